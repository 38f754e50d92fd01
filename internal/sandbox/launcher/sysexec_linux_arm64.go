package launcher

const sysExecveat = 281

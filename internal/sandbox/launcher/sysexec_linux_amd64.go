package launcher

const sysExecveat = 322

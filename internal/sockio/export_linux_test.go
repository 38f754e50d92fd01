package sockio

// WindowsOf reports how many lingering windows c opened and closed, and how
// many messages its reads waited for in the kernel. Call it only while no
// Read runs.
func WindowsOf(c *Dedicated) (opened, closed uint32, lingered uint64) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.windows.opened.Load(), c.windows.closed.Load(), c.lingered
}

// WindowsClosed reports how many lingering windows c closed; it may be
// called while a Read runs.
func WindowsClosed(c *Dedicated) uint32 { return c.windows.closed.Load() }

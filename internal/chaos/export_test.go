package chaos

// SetConnShare makes the runs of c share n connections of the server among their workers,
// whatever the server has free: a small share queues most workers for a connection.
func SetConnShare(c *Config, n int) { c.connShare = n }

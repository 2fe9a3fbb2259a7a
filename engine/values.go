package engine

// SetValue keeps v under key for the lifetime of c, for the nodes of one
// package to hand to those of another what they share within one job (in
// group mode, the Kafka source hands its member's transaction to the Kafka
// sinks). key should be a type of the package that owns it, as with
// context.WithValue. Safe for concurrent use.
func (c *Context) SetValue(key, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.values == nil {
		c.values = make(map[any]any)
	}
	c.values[key] = v
}

// Value returns what [Context.SetValue] kept under key, or nil.
func (c *Context) Value(key any) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[key]
}

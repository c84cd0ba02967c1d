package registry

// Attached returns the value attached to the registry under key, attaching
// mk() first if there is none (mk runs at most once per key). Packages
// keep there the state they derive from the registry and that must live
// as long as it — the load balancers' feedback store — instead of in
// package-level variables. key should be a value of an unexported type
// of the attaching package, as for context values.
func (r *Registry) Attached(key any, mk func() any) any {
	if v, ok := r.attached.Load(key); ok {
		return v
	}
	r.attachMu.Lock()
	defer r.attachMu.Unlock()
	if v, ok := r.attached.Load(key); ok {
		return v
	}
	v := mk()
	r.attached.Store(key, v)
	return v
}

package registry

import "strings"

// NamespaceOf returns the namespace of an upstream or route id: the part
// before its first ':' ("team-a" for "team-a:api", "" for a global id).
// The KDL adapter qualifies the ids of a namespace's items so; scoped
// control-API tokens and the tenant handler read them back with it.
func NamespaceOf(id string) string {
	ns, _, ok := strings.Cut(id, ":")
	if !ok {
		return ""
	}
	return ns
}

// InNamespace reports whether id belongs to namespace ns ("" matches
// every id).
func InNamespace(id, ns string) bool {
	return ns == "" || NamespaceOf(id) == ns
}

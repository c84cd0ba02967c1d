package kdladapter

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/etcdstore"
	"github.com/sentinel-proxy/sentinel/modules/kubestore"
)

// fleetBlock is the schema of admin-api.fleet, built once.
var fleetBlock = fleetKey()

// fleetKey is admin-api.fleet: where a fleet's replicas share the state
// made through the API (docs/fleet.md). Its etcd block maps to the
// `sentinel.stores.etcd` module, its kubernetes block to
// `sentinel.stores.kubernetes`: the `sentinel` app's store.
func fleetKey() *Key {
	return ext(h("fleet", "replicas share the API-made state (targets, weights, drains, route switches) through etcd or a Kubernetes ConfigMap, instead of a state-file (docs/fleet.md)",
		typedBlock[etcdstore.Etcd](h("etcd", "the `sentinel.stores.etcd` store"),
			stringsField("endpoints", "client URLs of the etcd members (required)", func(e *etcdstore.Etcd) *[]string { return &e.Endpoints }),
			stringField("prefix", "key prefix of this fleet (default \"/sentinel/\")", func(e *etcdstore.Etcd) *string { return &e.Prefix }),
			stringField("username", "etcd user", func(e *etcdstore.Etcd) *string { return &e.Username }),
			stringField("password", "etcd password; write `\"{env.ETCD_PASSWORD}\"` to keep it out of the Caddy JSON", func(e *etcdstore.Etcd) *string { return &e.Password }),
			durationField("dial-timeout", "connection timeout (default 5s)", func(e *etcdstore.Etcd) *caddy.Duration { return &e.DialTimeout }),
			stringField("ca-file", "CAs of the members' certificates", func(e *etcdstore.Etcd) *string { return &e.CAFile }),
			stringField("cert-file", "client certificate", func(e *etcdstore.Etcd) *string { return &e.CertFile }),
			stringField("key-file", "client key", func(e *etcdstore.Etcd) *string { return &e.KeyFile }),
			stringField("server-name", "name checked in the members' certificates", func(e *etcdstore.Etcd) *string { return &e.ServerName }),
		),
		typedBlock[kubestore.Kubernetes](h("kubernetes", "the `sentinel.stores.kubernetes` store: the state in one ConfigMap, written by the replicas and the operator (docs/operator.md)"),
			stringField("name", "the ConfigMap (required; with the operator: \"<proxy>-state\")", func(k *kubestore.Kubernetes) *string { return &k.Name }),
			stringField("namespace", "its namespace (default: the pod's)", func(k *kubestore.Kubernetes) *string { return &k.Namespace }),
			stringField("key", "the data key holding the state (default \"state\")", func(k *kubestore.Kubernetes) *string { return &k.Key }),
			stringField("kubeconfig", "a kubeconfig file (default: the in-cluster service account)", func(k *kubestore.Kubernetes) *string { return &k.Kubeconfig }),
			stringField("context", "the kubeconfig context (default: its current one)", func(k *kubestore.Kubernetes) *string { return &k.Context }),
			durationField("timeout", "bound of one API request (default 5s)", func(k *kubestore.Kubernetes) *caddy.Duration { return &k.Timeout }),
		),
	))
}

// etcdStoreJSON and kubeStoreJSON write the app's store module.
var (
	etcdStoreJSON = newModuleJSON[etcdstore.Etcd]("store", "etcd")
	kubeStoreJSON = newModuleJSON[kubestore.Kubernetes]("store", "kubernetes")
)

// fleetStore maps admin-api.fleet to the app's store, or nil.
func (a *adapter) fleetStore(f *kdl.Node) json.RawMessage {
	e, k := setting(f, "etcd"), setting(f, "kubernetes")
	switch {
	case e != nil && k != nil:
		a.d.errorf(k.Pos, "admin-api.fleet: etcd and kubernetes exclude each other: choose one home for the state")
		return nil
	case k != nil:
		v := fleetBlock.Children[1].Map(a, k).(*kubestore.Kubernetes)
		if v.Name == "" {
			a.d.errorf(k.Pos, "admin-api.fleet.kubernetes needs name (the ConfigMap holding the state)")
		}
		return kubeStoreJSON.raw(v)
	case e == nil:
		a.d.errorf(f.Pos, "admin-api.fleet needs an etcd or a kubernetes block")
		return nil
	}
	v := fleetBlock.Children[0].Map(a, e).(*etcdstore.Etcd)
	if len(v.Endpoints) == 0 {
		a.d.errorf(e.Pos, "admin-api.fleet.etcd needs endpoints (the etcd members' client URLs)")
	}
	return etcdStoreJSON.raw(v)
}

package kdladapter

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/kdladapter/kdl"
	"github.com/sentinel-proxy/sentinel/modules/etcdstore"
)

// fleetBlock is the schema of admin-api.fleet, built once.
var fleetBlock = fleetKey()

// fleetKey is admin-api.fleet: where a fleet's replicas share the state
// made through the API (docs/fleet.md). Its etcd block maps to the
// `sentinel.stores.etcd` module, the `sentinel` app's store.
func fleetKey() *Key {
	return ext(h("fleet", "replicas share the API-made state (targets, weights, drains, route switches) through etcd, instead of a state-file (docs/fleet.md)",
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
	))
}

// etcdStoreJSON writes the app's etcd store module.
var etcdStoreJSON = newModuleJSON[etcdstore.Etcd]("store", "etcd")

// fleetStore maps admin-api.fleet to the app's store, or nil.
func (a *adapter) fleetStore(f *kdl.Node) json.RawMessage {
	e := setting(f, "etcd")
	if e == nil {
		a.d.errorf(f.Pos, "admin-api.fleet needs an etcd block")
		return nil
	}
	v := fleetBlock.Children[0].Map(a, e).(*etcdstore.Etcd)
	if len(v.Endpoints) == 0 {
		a.d.errorf(e.Pos, "admin-api.fleet.etcd needs endpoints (the etcd members' client URLs)")
	}
	return etcdStoreJSON.raw(v)
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/translate"
)

// ConfigKey is the key of the config in a Gateway's ConfigMap.
const ConfigKey = "caddy.json"

// ConfigMapProgrammer writes a Gateway's configuration into the ConfigMap
// "<gateway>-sentinel-config" of its namespace (key caddy.json, owned by
// the Gateway), which the Gateway's replicas mount and serve with
// `sentinel run --config /etc/sentinel/caddy.json --watch`; Caddy's
// admin endpoint stays off. The Gateway's address is the one of the
// Service "<gateway>-sentinel" (its load balancer's, else its cluster
// IP): until it has one, the Gateway is not Programmed.
type ConfigMapProgrammer struct {
	// C is the manager's client (writes, and Services from its cache).
	C client.Client
	// Reader reads the ConfigMaps (the manager's API reader: the
	// operator's cache holds only its state ConfigMaps).
	Reader client.Reader
	// Infra, when set, makes each Gateway's Deployment and Service
	// (infra.go); nil: they are deployed by hand.
	Infra *Infrastructure
}

// reader reads ConfigMaps, Deployments and SentinelProxies.
func (p *ConfigMapProgrammer) reader() client.Reader {
	if p.Reader == nil {
		return p.C
	}
	return p.Reader
}

var _ Programmer = (*ConfigMapProgrammer)(nil)

// Target implements Programmer: every interface, admin off.
func (p *ConfigMapProgrammer) Target(context.Context, *gwv1.Gateway) (string, json.RawMessage, error) {
	return "", nil, nil
}

// Program implements Programmer.
func (p *ConfigMapProgrammer) Program(ctx context.Context, gw *gwv1.Gateway, cfg []byte) ([]gwv1.GatewayStatusAddress, error) {
	return p.ProgramModules(ctx, gw, cfg, nil)
}

// ProgramModules implements ModuleProgrammer: the modules' copies first
// (plugins.go), then the config, then the Deployment mounting both.
func (p *ConfigMapProgrammer) ProgramModules(ctx context.Context, gw *gwv1.Gateway, cfg []byte, modules []translate.Module) ([]gwv1.GatewayStatusAddress, error) {
	if err := p.deliverModules(ctx, gw, modules); err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: gw.Namespace, Name: configMapName(gw)}
	var cm corev1.ConfigMap
	err := p.reader().Get(ctx, key, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{"gateway.networking.k8s.io/gateway-name": gw.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: gwv1.GroupVersion.String(), Kind: "Gateway", Name: gw.Name, UID: gw.UID,
			}},
		}, Data: map[string]string{ConfigKey: string(cfg)}}
		if err := p.C.Create(ctx, &cm); err != nil {
			return nil, fmt.Errorf("creating ConfigMap %s: %w", key, err)
		}
	case err != nil:
		return nil, fmt.Errorf("reading ConfigMap %s: %w", key, err)
	case !ownedBy(&cm, gw):
		return nil, notOwnedError("ConfigMap", &cm, gw)
	case cm.Data[ConfigKey] != string(cfg):
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[ConfigKey] = string(cfg)
		if err := p.C.Update(ctx, &cm); err != nil {
			return nil, fmt.Errorf("updating ConfigMap %s: %w", key, err)
		}
	}
	if p.Infra != nil {
		if err := p.ensureInfrastructure(ctx, gw, cfg, modules); err != nil {
			return nil, err
		}
	}
	var svc corev1.Service
	skey := types.NamespacedName{Namespace: gw.Namespace, Name: infraName(gw)}
	if err := p.reader().Get(ctx, skey, &svc); err != nil {
		return nil, fmt.Errorf("the Gateway's Service %s: %w", skey, err)
	}
	ip, host := gwv1.IPAddressType, gwv1.HostnameAddressType
	var out []gwv1.GatewayStatusAddress
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, gwv1.GatewayStatusAddress{Type: &ip, Value: in.IP})
		} else if in.Hostname != "" {
			out = append(out, gwv1.GatewayStatusAddress{Type: &host, Value: in.Hostname})
		}
	}
	if len(out) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		out = append(out, gwv1.GatewayStatusAddress{Type: &ip, Value: svc.Spec.ClusterIP})
	}
	return out, nil
}

// Remove implements Programmer: the ConfigMap goes with its owner.
func (p *ConfigMapProgrammer) Remove(context.Context, types.NamespacedName) error { return nil }

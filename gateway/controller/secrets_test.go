package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// secretSpy is the manager's real cache, noting every use of it for
// Secrets (informers, reads) by the type asked for.
type secretSpy struct {
	cache.Cache
	mu   sync.Mutex
	uses []string
}

func (s *secretSpy) note(obj secretQuery, what string) {
	if kind := secretKind(obj); kind != "" {
		s.mu.Lock()
		s.uses = append(s.uses, fmt.Sprintf("%s %s", what, kind))
		s.mu.Unlock()
	}
}

// secretQuery is what the cache is asked about.
type secretQuery = interface{ GetObjectKind() schema.ObjectKind }

// secretKind names obj's type when it is about Secrets, else "".
func secretKind(obj secretQuery) string {
	switch o := obj.(type) {
	case *corev1.Secret, *corev1.SecretList:
		return fmt.Sprintf("%T", o)
	}
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k == "Secret" || k == "SecretList" {
		return fmt.Sprintf("%T(%s)", obj, k)
	}
	return ""
}

func (s *secretSpy) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.note(obj, "Get")
	return s.Cache.Get(ctx, key, obj, opts...)
}

func (s *secretSpy) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	s.note(list, "List")
	return s.Cache.List(ctx, list, opts...)
}

func (s *secretSpy) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	s.note(obj, "GetInformer")
	return s.Cache.GetInformer(ctx, obj, opts...)
}

func (s *secretSpy) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...cache.InformerGetOption) (cache.Informer, error) {
	if gvk.Kind == "Secret" {
		s.mu.Lock()
		s.uses = append(s.uses, "GetInformerForKind "+gvk.String())
		s.mu.Unlock()
	}
	return s.Cache.GetInformerForKind(ctx, gvk, opts...)
}

func (s *secretSpy) used() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.uses...)
}

// TestListenerSecretsNotCached: a listener's certificate Secret created
// after its Gateway, then rotated, reaches the Gateway's config, while
// the manager's cache is never asked about a Secret (no informer, no
// read: no Secret data is cached in the operator's memory).
func TestListenerSecretsNotCached(t *testing.T) {
	kubetest.Need(t, env)
	ctx := context.Background()
	s := scheme(t)
	spy := &secretSpy{}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		NewCache: func(cfg *rest.Config, o cache.Options) (cache.Cache, error) {
			c, err := cache.New(cfg, o)
			spy.Cache = c
			return spy, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	name := gwv1.GatewayController("sentinel-proxy.io/secrets-test")
	p := &controller.ConfigMapProgrammer{C: mgr.GetClient(), Reader: mgr.GetAPIReader()}
	if err := controller.Setup(mgr, controller.Options{ControllerName: name, Programmer: p, SeveralInProcess: true}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}

	mkns(t, c, "sec")
	if err := c.Create(ctx, &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "secrets-test"}, Spec: gwv1.GatewayClassSpec{ControllerName: name}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "edge-sentinel"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 443}}}}); err != nil {
		t.Fatal(err)
	}
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "edge"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "secrets-test", Listeners: []gwv1.Listener{{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType,
			TLS: &gwv1.ListenerTLSConfig{CertificateRefs: []gwv1.SecretObjectReference{{Name: "edge-cert"}}}}},
	}}
	if err := c.Create(ctx, gw); err != nil {
		t.Fatal(err)
	}
	listener := func() string {
		var g gwv1.Gateway
		if err := c.Get(ctx, client.ObjectKeyFromObject(gw), &g); err != nil {
			return err.Error()
		}
		if len(g.Status.Listeners) != 1 {
			return fmt.Sprintf("listeners %+v", g.Status.Listeners)
		}
		return condOf(g.Status.Listeners[0].Conditions, "ResolvedRefs")
	}
	config := func() (string, string) {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: "sec", Name: "edge-sentinel-config"}, &cm); err != nil {
			return "", err.Error()
		}
		return cm.Data[controller.ConfigKey], cm.ResourceVersion
	}
	// Before the Secret: the listener says it is missing.
	eventually(t, 15*time.Second, func() string {
		if s := listener(); s != "ResolvedRefs=False/InvalidCertificateRef" {
			return "before the Secret: " + s
		}
		return ""
	})
	// certLine is a line of the certificate's PEM, as found in the config.
	certLine := func(pem []byte) string { return strings.Split(string(pem), "\n")[3] }
	certA, keyA, err := testutil.CertPEM("a.example.com")
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "edge-cert"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certA, corev1.TLSPrivateKeyKey: keyA}}
	if err := c.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		if s := listener(); s != "ResolvedRefs=True/ResolvedRefs" {
			return "after the Secret's creation: " + s
		}
		if cfg, msg := config(); !strings.Contains(cfg, certLine(certA)) {
			return "the config has not the certificate: " + msg
		}
		return ""
	})
	// Rotated: the new certificate reaches the config.
	certB, keyB, err := testutil.CertPEM("b.example.com")
	if err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{corev1.TLSCertKey: certB, corev1.TLSPrivateKeyKey: keyB}
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		if cfg, msg := config(); !strings.Contains(cfg, certLine(certB)) || strings.Contains(cfg, certLine(certA)) {
			return "the config has not the rotated certificate only: " + msg
		}
		return ""
	})
	if uses := spy.used(); len(uses) > 0 {
		t.Errorf("the manager's cache was asked about Secrets (it would cache their data): %v", uses)
	}
}

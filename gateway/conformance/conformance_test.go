// Package conformance runs the upstream Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance) against Sentinel's Gateway
// controller on a real kube-apiserver (envtest), with the rest of a
// cluster simulated (package gateway/internal/sim): the suite's echo
// backends are local echo-basic processes whose Pods are marked Ready and
// whose EndpointSlices point at 10.77.0.1, and each Gateway is a local
// Sentinel process on a loopback address of its own (127.0.0.10 and up,
// so that every Gateway can listen on port 80). It is a long test
// (SENTINEL_LONG_TESTS=1) and needs root in a network namespace:
//
//	unshare -n sh -c 'ip link set lo up; ip addr replace 10.77.0.1/32 dev lo;
//	  SENTINEL_LONG_TESTS=1 go test ./gateway/conformance -run TestConformance -v -timeout 60m'
//
// SENTINEL_CONFORMANCE_REPORT names a file for the suite's report (YAML);
// SENTINEL_CONFORMANCE_RUN runs one test (its short name).
package conformance

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/gateway-api/apis/v1alpha2"
	"sigs.k8s.io/gateway-api/apis/v1alpha3"
	"sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/gateway-api/conformance"
	confv1 "sigs.k8s.io/gateway-api/conformance/apis/v1"
	"sigs.k8s.io/gateway-api/conformance/tests"
	"sigs.k8s.io/gateway-api/conformance/utils/config"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/gateway/internal/sim"
	"github.com/sentinel-proxy/sentinel/internal/kubetest"
	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

var env *kubetest.Env

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	if !testutil.LongTests() {
		// No control plane for a skipped test.
		os.Exit(m.Run())
	}
	// The CRDs' release channel: experimental (default: an HTTPRoute
	// rule's retry, a claimed feature, is only there) or standard
	// (SENTINEL_CONFORMANCE_CHANNEL).
	channel := os.Getenv("SENTINEL_CONFORMANCE_CHANNEL")
	if channel == "" {
		channel = "experimental"
	}
	kubetest.Main(m, &env, sim.CRDDir(channel))
}

func TestConformance(t *testing.T) {
	testutil.Long(t)
	kubetest.Need(t, env)
	ip := endpointIP(t)
	// Every Gateway listens on its own loopback address, port 80 and up.
	if ln, err := net.Listen("tcp", "127.0.0.10:80"); err != nil {
		testutil.Missing(t, "cannot listen on 127.0.0.10:80 (run as root in a network namespace: unshare -n): %v", err)
	} else {
		ln.Close()
	}
	bin := testutil.Build(t, "./cmd/sentinel")
	echo := testutil.Build(t, "sigs.k8s.io/gateway-api/conformance/echo-basic")

	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, gwv1.Install, v1beta1.Install, v1alpha2.Install, v1alpha3.Install, apiextensionsv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	reps := sim.NewReplicas(t, bin, func(n int) string { return net.IPv4(127, 0, byte(n/200), byte(10+n%200)).String() })
	if err := controller.Setup(mgr, controller.Options{Programmer: reps.Programmer(), SeveralInProcess: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { mgr.Start(ctx); done <- struct{}{} }()
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	cluster := sim.NewCluster(t, c, echo, ip)
	go func() { cluster.Run(ctx, 100*time.Millisecond); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	gc := &gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "sentinel"}, Spec: gwv1.GatewayClassSpec{ControllerName: controller.DefaultControllerName}}
	if err := c.Create(ctx, gc); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	timeouts := config.DefaultTimeoutConfig()
	// A local control plane: conditions settle in milliseconds, not minutes.
	timeouts.GatewayMustHaveAddress = 30 * time.Second
	timeouts.GatewayMustHaveCondition = 30 * time.Second
	timeouts.GatewayStatusMustHaveListeners = 20 * time.Second
	timeouts.GatewayListenersMustHaveConditions = 20 * time.Second
	timeouts.HTTPRouteMustNotHaveParents = 20 * time.Second
	timeouts.HTTPRouteMustHaveCondition = 20 * time.Second
	timeouts.RouteMustHaveParents = 20 * time.Second
	timeouts.MaxTimeToConsistency = 15 * time.Second
	timeouts.NamespacesMustBeReady = 60 * time.Second
	timeouts.LatestObservedGenerationSet = 20 * time.Second
	timeouts.DefaultTestTimeout = 30 * time.Second
	opts := suite.ConformanceOptions{
		ConfigurableOptions: suite.ConfigurableOptions{
			GatewayClassName:     "sentinel",
			CleanupBaseResources: true,
			CleanupTestResources: true,
			SupportedFeatures:    controller.Features,
			ConformanceProfiles:  []suite.ConformanceProfileName{suite.GatewayHTTPConformanceProfileName, suite.GatewayGRPCConformanceProfileName, suite.GatewayTLSConformanceProfileName, suite.GatewayTCPConformanceProfileName},
			TimeoutConfig:        timeouts,
			RunTest:              os.Getenv("SENTINEL_CONFORMANCE_RUN"),
			ReportOutputPath:     os.Getenv("SENTINEL_CONFORMANCE_REPORT"),
			Mode:                 "default",
			Implementation: confv1.Implementation{
				Organization: "sentinel-proxy", Project: "sentinel", URL: "https://github.com/sentinel-proxy/sentinel",
				Version: "dev", Contact: []string{"@sentinel-proxy/maintainers"},
			},
		},
		Client:        c,
		ClientOptions: client.Options{Scheme: s},
		Clientset:     cs,
		RestConfig:    env.Config,
	}
	if opts.ReportOutputPath == "" {
		opts.ReportOutputPath = t.TempDir() + "/report.yaml"
	}
	_ = features.SupportGateway
	_ = corev1.NamespaceAll
	conformance.RunConformanceWithOptions(t, opts)
	_ = tests.ConformanceTests
}

// endpointIP is an IP of this machine outside 127/8 (EndpointSlices
// refuse loopback): .ci/run puts 10.77.0.1 on lo.
func endpointIP(t *testing.T) string {
	if lo, err := net.InterfaceByName("lo"); err == nil {
		addrs, _ := lo.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	testutil.Missing(t, "no IPv4 address outside 127.0.0.0/8 on the loopback interface: ip addr add 10.77.0.1/32 dev lo")
	return ""
}

// Command sentinel-operator is the Sentinel Kubernetes operator: it
// writes what SentinelUpstream resources declare (static targets, or a
// Service's EndpointSlices) into each proxy's shared state, the ConfigMap
// "<proxy>-state" that the proxy's replicas watch
// (admin-api.fleet.kubernetes), so that every replica routes by it
// without a reload. See docs/operator.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	gateway "github.com/sentinel-proxy/sentinel/gateway/controller"
	"github.com/sentinel-proxy/sentinel/operator/controller"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sentinel-operator:", err)
		os.Exit(1)
	}
}

// run parses the flags and runs the operator until a signal.
func run(args []string) error {
	fs := flag.NewFlagSet("sentinel-operator", flag.ContinueOnError)
	var o controller.Options
	var namespaces string
	fs.BoolVar(&o.LeaderElection, "leader-elect", true, "elect one active operator among its replicas (a Lease)")
	fs.StringVar(&o.LeaseNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the pod's)")
	fs.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "how long a Lease holds without renewal (a new leader takes over after it)")
	fs.DurationVar(&o.RenewDeadline, "renew-deadline", 10*time.Second, "how long the leader tries to renew before it stops")
	fs.DurationVar(&o.RetryPeriod, "retry-period", 2*time.Second, "how often candidates try to take the Lease")
	fs.StringVar(&namespaces, "namespaces", "", "comma-separated namespaces to watch (default: all)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `listen address of /metrics ("0": off)`)
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", `listen address of /healthz and /readyz ("0": off)`)
	gatewayAPI := fs.Bool("gateway-api", false, "also serve the Gateway API (GatewayClass, Gateway, HTTPRoute; docs/gateway-api.md)")
	gatewayDeploy := fs.Bool("gateway-deploy", true, "with --gateway-api: make each Gateway's Deployment and Service <gateway>-sentinel (false: deploy them by hand)")
	gatewayImage := fs.String("gateway-image", "ghcr.io/sentinel-proxy/sentinel:0.1.0", "with --gateway-api: the sentinel image of the Gateways' Deployments (a SentinelProxy parametersRef overrides it)")
	gatewayName := fs.String("gateway-controller-name", string(gateway.DefaultControllerName), "the GatewayClass controllerName served with --gateway-api")
	zo := zap.Options{}
	zo.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.Namespaces = append(o.Namespaces, ns)
		}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (in-cluster or KUBECONFIG): %w", err)
	}
	mgr, err := controller.NewManager(cfg, o)
	if err != nil {
		return err
	}
	if *gatewayAPI {
		p := &gateway.ConfigMapProgrammer{C: mgr.GetClient(), Reader: mgr.GetAPIReader()}
		if *gatewayDeploy {
			p.Infra = &gateway.Infrastructure{Image: *gatewayImage}
		}
		if err := gateway.Setup(mgr, gateway.Options{ControllerName: gwv1.GatewayController(*gatewayName), Programmer: p, Namespaces: o.Namespaces}); err != nil {
			return err
		}
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

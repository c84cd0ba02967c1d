package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// Labels and annotations of the simulation's objects.
const (
	deploymentLabel = "sim.sentinel-proxy.io/deployment"
	managedBy       = "sim.sentinel-proxy.io"
	portAnnotation  = "sim.sentinel-proxy.io/port-" // + container port: the local port
)

// Cluster plays the kubelet and the EndpointSlice controller for the
// conformance suite on a kube-apiserver alone: each Deployment gets its
// Pods, marked Running and Ready, each Pod of an echo-basic image a local
// echo-basic process (the suite's own echo server) on ports of its own,
// and each Service with a selector EndpointSlices pointing at IP (an
// address of this machine outside 127/8) and the Pods' local ports. Each
// such Pod also has an address of its own (podNet) with its container
// ports forwarded to its echo server, for endpoints written by hand.
type Cluster struct {
	// C is an admin client.
	C client.Client
	// Echo is the echo-basic executable.
	Echo string
	// IP is the endpoints' address (10.77.0.1 on lo).
	IP string

	tb    testing.TB
	mu    sync.Mutex
	procs map[types.NamespacedName]*testutil.Process
	net   podNet
}

// NewCluster returns the simulation of a test.
func NewCluster(tb testing.TB, c client.Client, echo, ip string) *Cluster {
	return &Cluster{C: c, Echo: echo, IP: ip, tb: tb, procs: map[types.NamespacedName]*testutil.Process{}}
}

// Run syncs every interval until ctx ends.
func (s *Cluster) Run(ctx context.Context, interval time.Duration) {
	for {
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.tb.Logf("sim: %v", err)
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for key, p := range s.procs {
				p.Stop()
				s.net.close(key)
			}
			s.mu.Unlock()
			return
		case <-time.After(interval):
		}
	}
}

// Sync runs one pass: Pods of Deployments, then EndpointSlices of
// Services.
func (s *Cluster) Sync(ctx context.Context) error {
	var deps appsv1.DeploymentList
	if err := s.C.List(ctx, &deps); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := s.C.List(ctx, &pods, client.HasLabels{deploymentLabel}); err != nil {
		return err
	}
	have := map[types.NamespacedName]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		have[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
	}
	want := map[types.NamespacedName]bool{}
	for i := range deps.Items {
		d := &deps.Items[i]
		if d.DeletionTimestamp != nil {
			continue
		}
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		for j := range n {
			key := types.NamespacedName{Namespace: d.Namespace, Name: fmt.Sprintf("%s-sim-%d", d.Name, j)}
			want[key] = true
			if have[key] == nil {
				if err := s.startPod(ctx, d, key); errors.Is(err, errSecretPending) {
					continue // started once the Secret exists
				} else if err != nil {
					return err
				}
			}
		}
	}
	for key, p := range have {
		if !want[key] {
			s.stop(key)
			if err := s.C.Delete(ctx, p, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return s.syncSlices(ctx)
}

// startPod creates the Pod key of Deployment d, starts its echo server
// and marks it Ready.
func (s *Cluster) startPod(ctx context.Context, d *appsv1.Deployment, key types.NamespacedName) error {
	tpl := d.Spec.Template
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{deploymentLabel: d.Name}, Annotations: map[string]string{},
	}, Spec: *tpl.Spec.DeepCopy()}
	pod.Spec.NodeName = "sim-node"
	for k, v := range tpl.Labels {
		pod.Labels[k] = v
	}
	env := map[string]string{}
	echo := false
	for _, c := range tpl.Spec.Containers {
		if strings.Contains(c.Image, "echo-basic") {
			echo = true
			// Secret volumes are written to a directory of the test;
			// the variables naming files under their mount paths
			// (TLS_SERVER_CERT, TLS_SERVER_PRIVKEY) point there.
			mounts, err := s.secretVolumes(ctx, key.Namespace, tpl.Spec.Volumes, c.VolumeMounts)
			if err != nil {
				return err
			}
			for _, e := range c.Env {
				if e.Value == "" {
					continue
				}
				v := e.Value
				for mp, dir := range mounts {
					if rest, ok := strings.CutPrefix(v, mp+"/"); ok {
						v = filepath.Join(dir, rest)
					}
				}
				if strings.HasPrefix(e.Name, "TLS_") && v == e.Value {
					continue // a file this simulation does not have
				}
				env[e.Name] = v
			}
		}
	}
	// The HTTP, gRPC and TCP echo servers (GRPC_ECHO_SERVER: gRPC in
	// cleartext on HTTP_PORT, the container port 3000; TCP_ECHO_SERVER:
	// TCP on 3000, TLS on 8443); the UDP mode is not simulated (its Pods
	// are Ready, nothing answers).
	podIP := s.IP
	if echo && env["UDP_ECHO_SERVER"] == "" {
		ports := map[string]int{"3000": testutil.FreePort(s.tb), "3001": testutil.FreePort(s.tb), "8443": testutil.FreePort(s.tb)}
		for cp, lp := range ports {
			pod.Annotations[portAnnotation+cp] = strconv.Itoa(lp)
		}
		vars := os.Environ()
		for k, v := range env {
			vars = append(vars, k+"="+v)
		}
		vars = append(vars, "POD_NAME="+key.Name, "NAMESPACE="+key.Namespace,
			"HTTP_PORT="+strconv.Itoa(ports["3000"]), "H2C_PORT="+strconv.Itoa(ports["3001"]), "HTTPS_PORT="+strconv.Itoa(ports["8443"]),
			// The TCP echo server (TCP_ECHO_SERVER): plain TCP and TLS.
			"TCP_PORT="+strconv.Itoa(ports["3000"]), "TLS_PORT="+strconv.Itoa(ports["8443"]))
		p := testutil.NewProcess(s.tb, "echo "+key.String(), vars, s.Echo)
		p.Grace = time.Second
		p.Start()
		s.mu.Lock()
		s.procs[key] = p
		s.mu.Unlock()
		// The Pod's own address, its container ports forwarded there.
		ip, err := s.net.podIP()
		if err != nil {
			s.tb.Logf("sim: %v", err)
		}
		if ip != "" {
			if err := s.net.forward(key, ip, ports); err != nil {
				return err
			}
			podIP = ip
		}
	}
	if err := s.C.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating Pod %s: %w", key, err)
	}
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
		},
	}
	if err := s.C.Status().Update(ctx, pod); err != nil {
		return fmt.Errorf("marking Pod %s ready: %w", key, err)
	}
	return nil
}

func (s *Cluster) stop(key types.NamespacedName) {
	s.mu.Lock()
	p := s.procs[key]
	delete(s.procs, key)
	s.mu.Unlock()
	s.net.close(key)
	if p != nil {
		p.Stop()
	}
}

// syncSlices gives each Service with a selector one EndpointSlice per
// ready Pod it selects (the Pods share IP and differ by port).
func (s *Cluster) syncSlices(ctx context.Context) error {
	var svcs corev1.ServiceList
	if err := s.C.List(ctx, &svcs); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := s.C.List(ctx, &pods, client.HasLabels{deploymentLabel}); err != nil {
		return err
	}
	var slices discoveryv1.EndpointSliceList
	if err := s.C.List(ctx, &slices, client.MatchingLabels{discoveryv1.LabelManagedBy: managedBy}); err != nil {
		return err
	}
	have := map[types.NamespacedName]*discoveryv1.EndpointSlice{}
	for i := range slices.Items {
		es := &slices.Items[i]
		have[types.NamespacedName{Namespace: es.Namespace, Name: es.Name}] = es
	}
	want := map[types.NamespacedName]bool{}
	for _, svc := range svcs.Items {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, p := range pods.Items {
			if p.Namespace != svc.Namespace || p.DeletionTimestamp != nil || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name + "-" + p.Name}
			want[key] = true
			es := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
					discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: managedBy,
				}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints: []discoveryv1.Endpoint{{
					Addresses:  []string{s.IP},
					Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true)},
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name},
				}},
			}
			for _, sp := range svc.Spec.Ports {
				tp := sp.TargetPort
				if tp.Type == intstr.Int && tp.IntVal == 0 {
					tp = intstr.FromInt32(sp.Port)
				}
				local, err := strconv.Atoi(p.Annotations[portAnnotation+tp.String()])
				if err != nil {
					local = int(tp.IntVal) // not simulated: the port as given
				}
				proto := sp.Protocol
				es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr(sp.Name), Port: ptr(int32(local)), Protocol: &proto, AppProtocol: sp.AppProtocol})
			}
			if old := have[key]; old == nil {
				if err := s.C.Create(ctx, es); err != nil && !apierrors.IsAlreadyExists(err) {
					return fmt.Errorf("creating EndpointSlice %s: %w", key, err)
				}
			} else if !equalJSON(old.Ports, es.Ports) {
				old.Ports, old.Endpoints = es.Ports, es.Endpoints
				if err := s.C.Update(ctx, old); err != nil {
					return fmt.Errorf("updating EndpointSlice %s: %w", key, err)
				}
			}
		}
	}
	for key, es := range have {
		if !want[key] {
			if err := s.C.Delete(ctx, es); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// errSecretPending: a Pod's Secret volume does not exist yet.
var errSecretPending = errors.New("sim: a Secret volume's Secret does not exist yet")

// secretVolumes writes the Secret volumes mounted by a container into
// directories of the test and returns them by mount path.
func (s *Cluster) secretVolumes(ctx context.Context, ns string, vols []corev1.Volume, mounts []corev1.VolumeMount) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range mounts {
		for _, v := range vols {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			var sec corev1.Secret
			if err := s.C.Get(ctx, types.NamespacedName{Namespace: ns, Name: v.Secret.SecretName}, &sec); apierrors.IsNotFound(err) {
				return nil, errSecretPending
			} else if err != nil {
				return nil, fmt.Errorf("sim: Secret volume %s of %s: %w", v.Name, ns, err)
			}
			dir := s.tb.TempDir()
			items := v.Secret.Items
			if len(items) == 0 {
				for k := range sec.Data {
					items = append(items, corev1.KeyToPath{Key: k, Path: k})
				}
			}
			for _, it := range items {
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(it.Path)), sec.Data[it.Key], 0o600); err != nil {
					return nil, fmt.Errorf("sim: Secret volume %s: %w", v.Name, err)
				}
			}
			out[strings.TrimSuffix(m.MountPath, "/")] = dir
		}
	}
	return out, nil
}

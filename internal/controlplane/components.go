package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Binaries are the files `make testbin` puts in a control-plane folder.
var Binaries = []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Etcd is an etcd process storing in dataDir and serving on clientURL
// (http://127.0.0.1:PORT), tuned for tests: no fsync, a large quota.
func Etcd(bin, dataDir, logFile string) (p *Process, clientURL string, err error) {
	clientPort, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	clientURL = fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	return &Process{Name: "etcd", Path: filepath.Join(bin, "etcd"), Log: logFile, Args: []string{
		"--data-dir=" + dataDir, "--listen-client-urls=" + clientURL, "--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL, "--initial-cluster=default=" + peerURL,
		"--unsafe-no-fsync=true", "--quota-backend-bytes=8589934592", "--log-level=warn",
	}}, clientURL, nil
}

// Workloads are the components that make Deployments really become
// Available on an apiserver: kube-controller-manager, and, unless
// controllerManagerOnly, kube-scheduler and kwok (which fakes one node and
// its pods). Call CreateFakeNode once they run.
type Workloads struct {
	ControllerManager, Scheduler, Kwok *Process
}

// Processes lists the components in start order.
func (w *Workloads) Processes() []*Process {
	var out []*Process
	for _, p := range []*Process{w.ControllerManager, w.Scheduler, w.Kwok} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// NewWorkloads describes the components for the apiserver that kubeconfig
// reaches; name prefixes process names and log files (in logDir).
func NewWorkloads(bin, kubeconfig, logDir, name string, controllerManagerOnly bool) (*Workloads, error) {
	auth := []string{"--kubeconfig=" + kubeconfig, "--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"}
	proc := func(component string, args []string) *Process {
		return &Process{Name: name + "/" + component, Path: filepath.Join(bin, component),
			Log: filepath.Join(logDir, name+"-"+component+".log"), Args: args}
	}
	w := &Workloads{ControllerManager: proc("kube-controller-manager", append(auth, "--use-service-account-credentials=false",
		"--controllers=deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,serviceaccount-controller,"+
			"garbage-collector-controller,endpointslice-controller,namespace-controller,node-lifecycle-controller",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10", "--concurrent-gc-syncs=10", "--concurrent-namespace-syncs=5"))}
	if controllerManagerOnly {
		return w, nil
	}
	w.Scheduler = proc("kube-scheduler", auth)
	// The heartbeat stage expects a node Lease; without it the node goes NotReady after ~50s.
	kwokArgs := []string{"--kubeconfig=" + kubeconfig, "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1", "--cidr=10.0.0.0/16", "--server-address=127.0.0.1:0", "--node-lease-duration-seconds=40"}
	stages, _ := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
	if len(stages) == 0 {
		return nil, fmt.Errorf("no kwok stage files in %s: run 'make testbin'", bin)
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	w.Kwok = proc("kwok", kwokArgs)
	return w, nil
}

// Start starts every component; on error the ones started are stopped.
func (w *Workloads) Start() error {
	for _, p := range w.Processes() {
		if err := p.Start(); err != nil {
			_ = w.Stop(10 * time.Second)
			return err
		}
	}
	return nil
}

// Stop stops every component, in reverse start order.
func (w *Workloads) Stop(timeout time.Duration) error {
	ps := w.Processes()
	var first error
	for i := len(ps) - 1; i >= 0; i-- {
		if err := ps[i].Stop(timeout); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// CreateFakeNode registers the node kwok manages.
func CreateFakeNode(ctx context.Context, c client.Client) error {
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("2000")}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "kwok-node-0", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"}},
		Status: corev1.NodeStatus{Allocatable: res, Capacity: res},
	}
	if err := c.Create(ctx, node); err != nil {
		return fmt.Errorf("create the kwok node: %w", err)
	}
	return nil
}

// Locate finds a folder with the control-plane binaries:
// $KUBEBUILDER_ASSETS, else the newest complete folder of the `make testbin`
// cache ($FLOTILLA_TESTBIN_CACHE, default ~/.cache/flotilla/testbin).
func Locate() (string, error) {
	complete := func(dir string) bool {
		for _, b := range Binaries {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" && complete(d) {
		return d, nil
	}
	cache := os.Getenv("FLOTILLA_TESTBIN_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(base, "flotilla", "testbin")
	}
	dirs, _ := filepath.Glob(filepath.Join(cache, "k8s-*"))
	var best string
	var bestTime time.Time
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err == nil && complete(d) && st.ModTime().After(bestTime) {
			best, bestTime = d, st.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no control-plane binaries in %s: run 'make testbin' in a Flotilla checkout (or pass --control-plane-bin)", cache)
	}
	return best, nil
}

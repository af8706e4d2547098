package framework

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
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cluster is one control plane: kube-apiserver (storing under its own etcd
// prefix), kube-controller-manager and, for a spoke, kube-scheduler and
// kwok with one fake node, so that Deployments really become Available.
type Cluster struct {
	Name string
	// URL of the apiserver, https://127.0.0.1:PORT.
	URL string
	// Kubeconfig is an admin kubeconfig file for this cluster alone.
	Kubeconfig string
	Config     *rest.Config
	Client     client.Client

	APIServer, ControllerManager, Scheduler, Kwok *Process
	// Agent is the flotilla-agent process of a registered spoke.
	Agent *Process
}

// Processes lists the cluster's processes in start order.
func (c *Cluster) Processes() []*Process {
	var out []*Process
	for _, p := range []*Process{c.APIServer, c.ControllerManager, c.Scheduler, c.Kwok, c.Agent} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (f *Fleet) newCluster(name string, workloads bool) (*Cluster, error) {
	dir := filepath.Join(f.Dir, "clusters", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: name, URL: fmt.Sprintf("https://127.0.0.1:%d", port), Kubeconfig: filepath.Join(dir, "kubeconfig")}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: f.pki.caPEM}
	kc.AuthInfos[name+"-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: f.pki.adminCertPEM, ClientKeyData: f.pki.adminKeyPEM}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name + "-admin"}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, c.Kubeconfig); err != nil {
		return nil, err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return nil, err
	}
	c.Config.QPS, c.Config.Burst = -1, 0
	bin := f.opts.ControlPlaneBin
	c.APIServer = &Process{Name: name + "/kube-apiserver", Path: filepath.Join(bin, "kube-apiserver"), Log: filepath.Join(f.LogDir, name+"-kube-apiserver.log"), Args: []string{
		"--etcd-servers=" + f.etcdURL, "--etcd-prefix=/" + name,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + f.pki.ServingCert, "--tls-private-key-file=" + f.pki.ServingKey, "--client-ca-file=" + f.pki.CACert,
		"--service-account-issuer=https://" + name + ".flotilla.local", "--service-account-key-file=" + f.pki.SAPublicKey,
		"--service-account-signing-key-file=" + f.pki.SAKey, "--api-audiences=https://" + name + ".flotilla.local",
		"--authorization-mode=RBAC", "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount", "--enable-priority-and-fairness=true",
		"--endpoint-reconciler-type=none", "--profiling=true", "--watch-cache=true", "--event-ttl=10m", "--v=1",
	}}
	c.ControllerManager = &Process{Name: name + "/kube-controller-manager", Path: filepath.Join(bin, "kube-controller-manager"), Log: filepath.Join(f.LogDir, name+"-kube-controller-manager.log"), Args: []string{
		"--kubeconfig=" + c.Kubeconfig, "--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--use-service-account-credentials=false",
		"--controllers=deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,serviceaccount-controller," +
			"garbage-collector-controller,endpointslice-controller,namespace-controller,node-lifecycle-controller",
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10", "--concurrent-gc-syncs=10", "--concurrent-namespace-syncs=5",
	}}
	if workloads {
		c.Scheduler = &Process{Name: name + "/kube-scheduler", Path: filepath.Join(bin, "kube-scheduler"), Log: filepath.Join(f.LogDir, name+"-kube-scheduler.log"), Args: []string{
			"--kubeconfig=" + c.Kubeconfig, "--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0"}}
		kwokArgs := []string{"--kubeconfig=" + c.Kubeconfig, "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--node-ip=127.0.0.1", "--cidr=10.0.0.0/16", "--server-address=127.0.0.1:0", "--node-lease-duration-seconds=40"}
		stages, _ := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
		if len(stages) == 0 {
			return nil, fmt.Errorf("no kwok stage files in %s: run 'make testbin'", bin)
		}
		for _, s := range stages {
			kwokArgs = append(kwokArgs, "--config="+s)
		}
		c.Kwok = &Process{Name: name + "/kwok", Path: filepath.Join(bin, "kwok"), Log: filepath.Join(f.LogDir, name+"-kwok.log"), Args: kwokArgs}
	}
	return c, nil
}

// start starts the apiserver, waits for it, then the other components.
func (c *Cluster) start(ctx context.Context) error {
	if err := c.StartAPIServer(ctx); err != nil {
		return err
	}
	var err error
	if c.Client, err = client.New(c.Config, client.Options{Scheme: Scheme()}); err != nil {
		return err
	}
	for _, p := range []*Process{c.ControllerManager, c.Scheduler, c.Kwok} {
		if p == nil {
			continue
		}
		if err := p.Start(); err != nil {
			return err
		}
	}
	if c.Kwok == nil {
		return nil
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "kwok-node-0", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"}},
		Status: corev1.NodeStatus{Allocatable: nodeResources(), Capacity: nodeResources()},
	}
	if err := c.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("create the kwok node on %s: %w", c.Name, err)
	}
	return nil
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("2000")}
}

// StartAPIServer (re)starts the apiserver and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if err := c.APIServer.Start(); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if !c.APIServer.Running() {
			return false, fmt.Errorf("kube-apiserver of %s exited:\n%s", c.Name, TailFile(c.APIServer.Log, 20))
		}
		_, last = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver of %s not ready (%v): %w\n%s", c.Name, last, err, TailFile(c.APIServer.Log, 20))
	}
	return nil
}

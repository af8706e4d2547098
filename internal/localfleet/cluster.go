package localfleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/internal/controlplane"
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

	APIServer *controlplane.Process
	// Workloads are kube-controller-manager and, on a spoke, kube-scheduler and kwok.
	Workloads *controlplane.Workloads
	// Agent is the flotilla-agent process of a registered spoke.
	Agent *controlplane.Process
}

// Processes lists the cluster's processes in start order.
func (c *Cluster) Processes() []*controlplane.Process {
	out := append([]*controlplane.Process{c.APIServer}, c.Workloads.Processes()...)
	if c.Agent != nil {
		out = append(out, c.Agent)
	}
	return out
}

func (f *Fleet) newCluster(name string, workloads bool) (*Cluster, error) {
	dir := filepath.Join(f.Dir, "clusters", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := controlplane.FreePort()
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
	c.APIServer = &controlplane.Process{Name: name + "/kube-apiserver", Path: filepath.Join(bin, "kube-apiserver"), Log: filepath.Join(f.LogDir, name+"-kube-apiserver.log"), Args: []string{
		"--etcd-servers=" + f.etcdURL, "--etcd-prefix=/" + name,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + f.pki.ServingCert, "--tls-private-key-file=" + f.pki.ServingKey, "--client-ca-file=" + f.pki.CACert,
		"--service-account-issuer=https://" + name + ".flotilla.local", "--service-account-key-file=" + f.pki.SAPublicKey,
		"--service-account-signing-key-file=" + f.pki.SAKey, "--api-audiences=https://" + name + ".flotilla.local",
		"--authorization-mode=RBAC", "--service-cluster-ip-range=10.96.0.0/16", "--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount", "--enable-priority-and-fairness=true",
		"--endpoint-reconciler-type=none", "--profiling=true", "--watch-cache=true", "--event-ttl=10m", "--v=1",
	}}
	if c.Workloads, err = controlplane.NewWorkloads(bin, c.Kubeconfig, f.LogDir, name, !workloads); err != nil {
		return nil, err
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
	if err := c.Workloads.Start(); err != nil {
		return err
	}
	if c.Workloads.Kwok == nil {
		return nil
	}
	if err := controlplane.CreateFakeNode(ctx, c.Client); err != nil {
		return fmt.Errorf("%s: %w", c.Name, err)
	}
	return nil
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
			return false, fmt.Errorf("kube-apiserver of %s exited:\n%s", c.Name, controlplane.TailFile(c.APIServer.Log, 20))
		}
		_, last = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver of %s not ready (last error: %s): %w\n%s", c.Name, errText(last), err, controlplane.TailFile(c.APIServer.Log, 20))
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

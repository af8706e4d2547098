// Package testenv gives a test a real kube-apiserver (controller-runtime's
// envtest, with etcd) that has the Flotilla CRDs installed, in one call.
//
// The binaries come from `make testbin` (hack/testbin.sh), which builds them
// from the Go module proxy into a cache outside the checkout. A test never
// skips for want of them: it fails and says how to build them.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
)

// Env is a running control plane with the Flotilla CRDs installed.
type Env struct {
	// Config reaches the apiserver as an admin.
	Config *rest.Config
	// Client is a controller-runtime client with Scheme.
	Client client.Client
	// Scheme knows client-go's built-in kinds, Flotilla's and apiextensions'.
	Scheme *runtime.Scheme
	// Environment is the underlying envtest environment.
	Environment *envtest.Environment

	kubeconfigOnce sync.Once
	kubeconfig     string
	kubeconfigErr  error
}

type options struct {
	crds     []*apiextensionsv1.CustomResourceDefinition
	crdPaths []string
	bare     bool
}

// Option changes how Start builds the environment.
type Option func(*options)

// WithCRDs installs extra CRDs (for example Cluster API's) next to Flotilla's.
func WithCRDs(crds ...*apiextensionsv1.CustomResourceDefinition) Option {
	return func(o *options) { o.crds = append(o.crds, crds...) }
}

// WithoutFlotillaCRDs starts a bare apiserver, as a cluster looks before
// `flotilla install` or `flotilla cluster register`.
func WithoutFlotillaCRDs() Option {
	return func(o *options) { o.bare = true }
}

// WithCRDPaths installs extra CRDs from YAML files or directories.
func WithCRDPaths(paths ...string) Option {
	return func(o *options) { o.crdPaths = append(o.crdPaths, paths...) }
}

// Scheme returns a scheme with client-go's kinds, apiextensions and Flotilla's API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, flotillav1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(fmt.Sprintf("build test scheme: %v", err))
		}
	}
	return s
}

// Start starts a kube-apiserver and etcd bound to 127.0.0.1, installs the
// hub CRDs (and any given with WithCRDs) and stops everything when the test
// ends.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	assets, err := AssetsDir()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	crds, err := charts.HubCRDs()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if o.bare {
		crds = nil
	}
	scheme := Scheme()
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDs:                     append(crds, o.crds...),
		CRDDirectoryPaths:        o.crdPaths,
		ErrorIfCRDPathMissing:    true,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		t.Fatalf("testenv: start kube-apiserver and etcd from %s: %v", assets, err)
	}
	env := &Env{Config: cfg, Scheme: scheme, Environment: te}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Errorf("testenv: stop control plane: %v", err)
		}
	})
	env.Client, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("testenv: build client: %v", err)
	}
	return env
}

// Kubeconfig writes an admin kubeconfig for the apiserver into a file that
// lives as long as the test, and returns its path.
func (e *Env) Kubeconfig(t testing.TB) string {
	t.Helper()
	e.kubeconfigOnce.Do(func() {
		user, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: "testenv-admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			e.kubeconfigErr = err
			return
		}
		raw, err := user.KubeConfig()
		if err != nil {
			e.kubeconfigErr = err
			return
		}
		path := filepath.Join(t.TempDir(), "kubeconfig")
		e.kubeconfigErr = os.WriteFile(path, raw, 0o600)
		e.kubeconfig = path
	})
	if e.kubeconfigErr != nil {
		t.Fatalf("testenv: write kubeconfig: %v", e.kubeconfigErr)
	}
	return e.kubeconfig
}

// Kubectl runs the kubectl built by `make testbin` against the apiserver
// and returns its standard output.
func (e *Env) Kubectl(t testing.TB, args ...string) (string, error) {
	t.Helper()
	kubeconfig := e.Kubeconfig(t)
	cmd := exec.CommandContext(t.Context(), filepath.Join(e.Environment.BinaryAssetsDirectory, "kubectl"),
		append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// AssetsDir finds the directory holding kube-apiserver, etcd and kubectl:
// $KUBEBUILDER_ASSETS when set, otherwise the cache `make testbin` fills.
func AssetsDir() (string, error) {
	const hint = "run 'make testbin' (or 'make test') to build the control-plane binaries"
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if err := hasBinaries(dir); err != nil {
			return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s: %w; %s", dir, err, hint)
		}
		return dir, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("%w; %s", err, hint)
	}
	out, err := exec.Command("bash", filepath.Join(root, "hack", "testbin.sh"), "--print-dir").Output()
	if err != nil {
		return "", fmt.Errorf("locate the testbin cache: %w; %s", err, hint)
	}
	dir := strings.TrimSpace(string(out))
	if err := hasBinaries(dir); err != nil {
		return "", fmt.Errorf("%s: %w; %s", dir, err, hint)
	}
	return dir, nil
}

func hasBinaries(dir string) error {
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("no %s", b)
		}
	}
	return nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if raw, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(raw, []byte("module github.com/flotilla-dev/flotilla\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the flotilla module root above the working directory")
		}
		dir = parent
	}
}

// UserKubeconfig provisions a client-certificate user on the apiserver (no
// permissions beyond what RBAC later grants it) and returns a kubeconfig for it.
func (e *Env) UserKubeconfig(t testing.TB, name string, groups ...string) []byte {
	t.Helper()
	user, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("testenv: add user %s: %v", name, err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("testenv: kubeconfig for %s: %v", name, err)
	}
	return raw
}

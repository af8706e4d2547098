package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StartWorkloads runs kube-controller-manager, kube-scheduler and kwok
// against the apiserver and registers one fake node, so that Deployments
// really go Progressing → Available (kwok fakes the pods). Everything is
// stopped when the test ends.
func (e *Env) StartWorkloads(t testing.TB) {
	t.Helper()
	bin := e.Environment.BinaryAssetsDirectory
	kubeconfig := e.Kubeconfig(t)
	logs := t.TempDir()
	controllers := "deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller," +
		"serviceaccount-controller,garbage-collector-controller,endpointslice-controller,namespace-controller,node-lifecycle-controller"
	e.startProcess(t, logs, "kube-controller-manager", filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig, "--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0", "--controllers="+controllers,
		"--use-service-account-credentials=false", "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10")
	e.startProcess(t, logs, "kube-scheduler", filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig="+kubeconfig, "--authentication-kubeconfig="+kubeconfig, "--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0")
	kwokArgs := []string{"--kubeconfig=" + kubeconfig, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-ip=127.0.0.1", "--cidr=10.0.0.0/16",
		"--node-lease-duration-seconds=40"} // the heartbeat stage expects a node Lease; without it the node goes NotReady after ~50s
	stages, _ := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
	if len(stages) == 0 {
		t.Fatalf("testenv: no kwok stage files in %s: run 'make testbin'", bin)
	}
	for _, s := range stages {
		kwokArgs = append(kwokArgs, "--config="+s)
	}
	e.startProcess(t, logs, "kwok", filepath.Join(bin, "kwok"), kwokArgs...)

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "kwok-node-0", Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("1000")},
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("1000")}},
	}
	if err := e.Client.Create(t.Context(), node); err != nil {
		t.Fatalf("testenv: create the kwok node: %v", err)
	}
}

func (e *Env) startProcess(t testing.TB, logDir, name, path string, args ...string) {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = logFile.Close()
		if t.Failed() {
			raw, _ := os.ReadFile(logPath)
			lines := strings.Split(string(raw), "\n")
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			t.Logf("%s (last lines of %s):\n%s", name, logPath, strings.Join(lines, "\n"))
		}
	})
	// Fail fast when a component dies at start-up (bad flag, port clash).
	select {
	case <-exited:
		raw, _ := os.ReadFile(logPath)
		t.Fatalf("testenv: %s exited at start-up:\n%s", name, tail(string(raw), 2000))
	case <-time.After(500 * time.Millisecond):
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

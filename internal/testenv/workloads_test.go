package testenv_test

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestWorkloads proves the harness: a Deployment becomes Available.
func TestWorkloads(t *testing.T) {
	env := testenv.Start(t)
	env.StartWorkloads(t)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}}}
	if err := env.Client.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := env.Client.Get(t.Context(), types.NamespacedName{Namespace: "default", Name: "web"}, d); err != nil {
			t.Fatal(err)
		}
		if d.Status.AvailableReplicas == 2 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	var pods corev1.PodList
	_ = env.Client.List(t.Context(), &pods)
	for _, p := range pods.Items {
		t.Logf("pod %s node=%q phase=%s conds=%v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
	}
	var nodes corev1.NodeList
	_ = env.Client.List(t.Context(), &nodes)
	for _, n := range nodes.Items {
		t.Logf("node %s taints=%v conds=%v", n.Name, n.Spec.Taints, n.Status.Conditions)
	}
	t.Fatalf("Deployment not Available: %+v", d.Status)
}

package applicationset

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/project"
)

// namespaceAllowed: the hub reconciles ApplicationSets only in the
// namespaces --application-set-namespaces allows (empty: all).
func (r *Reconciler) namespaceAllowed(ns string) bool {
	return len(r.Namespaces) == 0 || project.Glob(r.Namespaces, ns)
}

// checkProjects checks every desired Application against its Project:
// the set's namespace may use it, the repository is a source, a
// destination selects the cluster and allows the namespace. It returns
// the violations (up to 5 named) as one error, or a read error.
func (r *Reconciler) checkProjects(ctx context.Context, set *flotillav1.ApplicationSet, desired []*flotillav1.Application) error {
	if r.Projects == nil {
		return nil
	}
	projects := map[string]*flotillav1.Project{}
	labels := map[string]map[string]string{}
	var violations []string
	n := 0
	for _, a := range desired {
		name := project.Name(a)
		p, ok := projects[name]
		if !ok {
			var err error
			if p, err = r.Projects(ctx, name); err != nil && !project.IsViolation(err) {
				return err
			} else if err != nil {
				n++
				if len(violations) < 5 {
					violations = append(violations, fmt.Sprintf("Application %s: %v", a.Name, err))
				}
				projects[name] = nil
				continue
			}
			projects[name] = p
		}
		if p == nil {
			n++
			continue
		}
		cluster := a.Spec.Destination.Cluster
		if _, ok := labels[cluster]; !ok {
			mc := &flotillav1.MemberCluster{}
			if err := r.Client.Get(ctx, client.ObjectKey{Name: cluster}, mc); err == nil {
				labels[cluster] = mc.Labels
			} else {
				labels[cluster] = nil
			}
		}
		if err := project.CheckApplication(p, set.Namespace, a, labels[cluster]); err != nil {
			n++
			if len(violations) < 5 {
				violations = append(violations, err.Error())
			}
		}
	}
	if n == 0 {
		return nil
	}
	msg := strings.Join(violations, "; ")
	if n > len(violations) {
		msg += fmt.Sprintf("; and %d more", n-len(violations))
	}
	return &projectRefusal{fmt.Sprintf("%d of %d Applications break their Project: %s", n, len(desired), msg)}
}

type projectRefusal struct{ msg string }

func (e *projectRefusal) Error() string { return e.msg }

// projectRefused reports a set whose Applications break their Projects
// and writes nothing else: the existing Applications stay as they are.
func (r *Reconciler) projectRefused(ctx context.Context, set *flotillav1.ApplicationSet, generated int, err error) (ctrl.Result, error) {
	msg := err.Error() + "; nothing of the set was written, its existing Applications are left unchanged"
	if old := apimeta.FindStatusCondition(set.Status.Conditions, flotillav1.ConditionResourcesUpToDate); old == nil || old.Reason != flotillav1.ReasonProjectViolation || old.Message != msg {
		r.event(set, corev1.EventTypeWarning, flotillav1.ReasonProjectViolation, msg)
	}
	if serr := r.applyConditions(ctx, set, true,
		metav1.Condition{Type: flotillav1.ConditionParametersGenerated, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonGenerated, Message: fmt.Sprintf("%d parameter sets", generated)},
		metav1.Condition{Type: flotillav1.ConditionResourcesUpToDate, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonProjectViolation, Message: msg},
	); serr != nil {
		return ctrl.Result{}, serr
	}
	return ctrl.Result{}, reconcile.TerminalError(errors.New(msg)) // a change to the set or a Project re-queues it
}

// enqueueForProject re-queues every allowed set when a Project changes:
// what it allows decides whether their Applications may be written.
func (r *Reconciler) enqueueForProject(ctx context.Context, _ client.Object) []reconcile.Request {
	var sets flotillav1.ApplicationSetList
	if err := r.Client.List(ctx, &sets); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, s := range sets.Items {
		if r.namespaceAllowed(s.Namespace) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
		}
	}
	return out
}

package delivery

import (
	"context"
	"encoding/json"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/project"
)

// projectRules checks a hub Application against its Project (the set's
// Applications passed the set's check; a hand-made one is checked here
// first, and a narrowed Project stops further deliveries) and returns the
// rules its spoke copy carries. A violation is returned as is; nil
// Projects means no checks and no rules.
func (r *Reconciler) projectRules(ctx context.Context, app *flotillav1.Application, mc *flotillav1.MemberCluster) (string, error) {
	if r.Projects == nil {
		return "", nil
	}
	p, err := r.Projects(ctx, project.Name(app))
	if err != nil {
		return "", err
	}
	if err := project.CheckApplication(p, app.Namespace, app, mc.Labels); err != nil {
		return "", err
	}
	raw, err := json.Marshal(project.Rules(p, mc.Labels))
	return string(raw), err
}

// appsOfProject re-queues the Applications that use a changed Project.
func (r *Reconciler) appsOfProject(ctx context.Context, o client.Object) []reconcile.Request {
	var apps flotillav1.ApplicationList
	if err := r.Client.List(ctx, &apps); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range apps.Items {
		if a := &apps.Items[i]; project.Name(a) == o.GetName() && !flotillav1.IsSpokeCopy(a) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(a)})
		}
	}
	return out
}

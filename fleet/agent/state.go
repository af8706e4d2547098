package agent

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// memo is what the agent remembers of one Application between reconciles:
// the last render and what became of applying it.
type memo struct {
	generation int64
	revision   string
	commitTime time.Time
	checkedAt  time.Time
	rendered   [][]byte // the render, one JSON object each (see memoCache)
	size       int64    // bytes of rendered
	applied    bool     // the current render has been applied
	appliedAt  time.Time
	errs       map[string]error  // per object, from the last apply
	driftAt    time.Time         // last drift check
	corrected  int64             // drift corrections so far (status may lag in the cache)
	drifted    map[string]string // found by the last drift check, until the next apply
	// prunePending: objects left Git and wait to be pruned (PruneLast)
	// until everything else is Healthy.
	prunePending bool
	// preHooksDone and postHooksDone: this render's hooks ran (once per render).
	preHooksDone, postHooksDone bool
	// failure is the last check's fetch or render failure, reported until
	// the next check (the render above still stands on the cluster).
	failure *failure
}

// failure is a fetch or render that failed, for the status.
type failure struct {
	reason, revision string
	err              error
	requeue          time.Duration
	credentials      int64 // Reconciler.credentials when it failed
}

// syncState is one reconcile of one Application, passed through the phases.
type syncState struct {
	app       *flotillav1.Application
	key       types.NamespacedName
	defaultNS string
	// The Application's sync policy.
	auto, selfHeal, prunes bool
	// refresh and sync are requests not handled yet (their annotation's
	// value differs from status.lastHandled*): handled once each.
	refresh, sync bool

	memo  *memo
	snap  *git.Snapshot    // a fresh commit to render; nil when the memo's render stands
	chart *helmchart.Chart // or a fresh chart version (Helm repository, OCI)
	// preHooks and postHooks are the render's Helm hooks, in run order (not in objs).
	preHooks, postHooks []*unstructured.Unstructured
	objs                []*unstructured.Unstructured
	prepErrs            map[*unstructured.Unstructured]error
	prev                []applied.Ref // the record of the last sync
	apply               bool
	drifted             map[string]string
	results             []Result
	gone                []applied.Ref
	out                 *outcome
	// rules are the Project rules delivered with the Application (nil:
	// none); writer and applier act as the ServiceAccount that applies it.
	rules   *flotillav1.ProjectRules
	writer  client.Client
	applier *Applier
}

func newSyncState(app *flotillav1.Application) *syncState {
	s := &syncState{app: app, key: client.ObjectKeyFromObject(app), defaultNS: app.Spec.Destination.Namespace,
		refresh: requested(app, flotillav1.AnnotationRefresh, app.Status.LastHandledRefresh),
		sync:    requested(app, flotillav1.AnnotationSync, app.Status.LastHandledSync)}
	if s.defaultNS == "" {
		s.defaultNS = "default"
	}
	if p := app.Spec.SyncPolicy; p != nil && p.Automated != nil {
		s.auto, s.selfHeal, s.prunes = true, p.Automated.SelfHeal, p.Automated.Prune
	}
	return s
}

// requested reports whether annotation asks for something not handled yet.
func requested(app *flotillav1.Application, annotation, handled string) bool {
	v := app.Annotations[annotation]
	return v != "" && kube.Truncate(v, 256) != handled
}

// hasOption reports whether the Application sets a sync option (e.g.
// CreateNamespace=true).
func (s *syncState) hasOption(opt string) bool {
	if s.app.Spec.SyncPolicy == nil {
		return false
	}
	for _, o := range s.app.Spec.SyncPolicy.SyncOptions {
		if strings.EqualFold(o, opt) {
			return true
		}
	}
	return false
}

// outcome is what a sync found, for the status.
type outcome struct {
	syncStatus flotillav1.SyncStatusCode
	synced     metav1.Condition
	resources  []flotillav1.ResourceStatus
	count      int
	syncErr    string
	corrected  int64 // total drift corrections
	applied    bool
	revision   string
	commitTime time.Time
	requeue    time.Duration
	// handledRefresh and handledSync are the request values this sync
	// handled (empty: none).
	handledRefresh, handledSync string
}

// notSynced is the outcome of a sync that stopped before applying: applied
// objects are left as they are.
func notSynced(reason string, err error, revision string, requeue time.Duration) *outcome {
	return &outcome{syncStatus: flotillav1.SyncStatusUnknown, syncErr: err.Error(), revision: revision, requeue: requeue,
		synced: metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: reason,
			Message: err.Error() + "; applied objects are left as they are"}}
}

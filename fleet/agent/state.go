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
}

// syncState is one reconcile of one Application, passed through the phases.
type syncState struct {
	app       *flotillav1.Application
	key       types.NamespacedName
	defaultNS string
	// The Application's sync policy.
	auto, selfHeal, prunes, refresh bool

	memo     *memo
	snap     *git.Snapshot // a fresh commit to render; nil when the memo's render stands
	objs     []*unstructured.Unstructured
	prepErrs map[*unstructured.Unstructured]error
	prev     []applied.Ref // the record of the last sync
	apply    bool
	drifted  map[string]string
	results  []Result
	gone     []applied.Ref
	out      *outcome
}

func newSyncState(app *flotillav1.Application) *syncState {
	s := &syncState{app: app, key: client.ObjectKeyFromObject(app), defaultNS: app.Spec.Destination.Namespace,
		refresh: app.Annotations[flotillav1.AnnotationRefresh] != ""}
	if s.defaultNS == "" {
		s.defaultNS = "default"
	}
	if p := app.Spec.SyncPolicy; p != nil && p.Automated != nil {
		s.auto, s.selfHeal, s.prunes = true, p.Automated.SelfHeal, p.Automated.Prune
	}
	return s
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
}

// notSynced is the outcome of a sync that stopped before applying: applied
// objects are left as they are.
func notSynced(reason string, err error, revision string, requeue time.Duration) *outcome {
	return &outcome{syncStatus: flotillav1.SyncStatusUnknown, syncErr: err.Error(), revision: revision, requeue: requeue,
		synced: metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: reason,
			Message: err.Error() + "; applied objects are left as they are"}}
}

package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
)

type statusOptions struct {
	hubOptions
	namespace string
	watch     bool
	interval  time.Duration
}

func newStatusCommand(s Streams) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [SET]",
		Short: "Fleet-wide rollout status: one line per ApplicationSet, or one row per cluster of SET",
		Long: `Show where the fleet stands.

Without SET: one line per ApplicationSet (all namespaces unless -n) with its
clusters, Applications synced, healthy, progressing and degraded, and the
most common revision's rollout (e.g. "38/40 on 1a2b3c4": 38 of the set's 40
Applications run commit 1a2b3c4 and their agents reported them Healthy on
their current spec). An Application nobody can vouch for (cluster
unreachable, agent unavailable, not reported yet) counts as UNKNOWN.

With SET: one row per cluster: Application, sync, health, revision, age and
message.

--watch redraws in place on a terminal (colours only there); -o json gives a
stable document for scripts.`,
		Example: `  flotilla status
  flotilla status guestbook -n apps --watch
  flotilla status -o json | jq '.applicationSets[] | select(.degraded > 0)'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := ""
			if len(args) == 1 {
				set = args[0]
			}
			return o.run(cmd.Context(), s, set)
		},
	}
	o.bind(cmd, "table, wide, json or yaml")
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the ApplicationSets (default: all namespaces; with SET: the kubeconfig context's namespace)")
	f.BoolVarP(&o.watch, "watch", "w", false, "keep refreshing")
	f.DurationVar(&o.interval, "interval", 2*time.Second, "refresh interval with --watch")
	return cmd
}

func (o *statusOptions) run(ctx context.Context, s Streams, set string) error {
	if err := checkOutput(o.output, "table", "wide", "json", "yaml"); err != nil {
		return err
	}
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	if set != "" && o.namespace == "" {
		o.namespace = o.contextNamespace()
	}
	tty := isTerminal(s.Out)
	render := func() ([]byte, error) {
		var buf bytes.Buffer
		var err error
		if set == "" {
			err = o.fleet(ctx, hub, &buf, palette{on: tty})
		} else {
			err = o.set(ctx, hub, set, &buf, palette{on: tty})
		}
		return buf.Bytes(), err
	}
	out, err := render()
	if err != nil {
		return err
	}
	if _, err := s.Out.Write(out); err != nil || !o.watch {
		return err
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		next, err := render()
		if err != nil {
			fmt.Fprintf(s.ErrOut, "refresh: %v\n", err)
			continue
		}
		if bytes.Equal(next, out) {
			continue
		}
		out = next
		if tty {
			// Redraw in place: home, clear screen.
			_, _ = io.WriteString(s.Out, "\x1b[H\x1b[2J")
		} else {
			_, _ = io.WriteString(s.Out, "\n")
		}
		if _, err := s.Out.Write(out); err != nil {
			return err
		}
	}
}

func (o *hubOptions) contextNamespace() string {
	raw, err := o.kube.rawConfig()
	if err == nil {
		name := o.kube.context
		if name == "" {
			name = raw.CurrentContext
		}
		if c, ok := raw.Contexts[name]; ok && c.Namespace != "" {
			return c.Namespace
		}
	}
	return "default"
}

// SetStatus is one ApplicationSet's line in `flotilla status -o json`.
type SetStatus struct {
	Namespace    string   `json:"namespace"`
	Name         string   `json:"name"`
	Clusters     int32    `json:"clusters"`
	Applications int32    `json:"applications"`
	Synced       int32    `json:"synced"`
	Healthy      int32    `json:"healthy"`
	Progressing  int32    `json:"progressing"`
	Degraded     int32    `json:"degraded"`
	Unknown      int32    `json:"unknown"`
	Rollout      *Rollout `json:"rollout,omitempty"`
	// Strategy is the rolling update's state (sets with a RollingUpdate strategy).
	Strategy *RolloutState `json:"strategy,omitempty"`
	// Project the set's Applications use (its template's spec.project).
	Project    string          `json:"project"`
	Status     string          `json:"status"`
	Message    string          `json:"message,omitempty"`
	NotHealthy []NotHealthyApp `json:"notHealthy,omitempty"`
}

// Rollout is how far the most common revision has spread: Healthy counts
// only Applications whose agent reported Healthy on their current spec.
type Rollout struct {
	Revision     string `json:"revision"`
	Applications int32  `json:"applications"`
	Healthy      int32  `json:"healthy"`
	Of           int32  `json:"of"`
}

// RolloutState is a rolling update's phase and step in `flotilla status`.
type RolloutState struct {
	Phase   string `json:"phase"`
	Step    string `json:"step"`
	Target  string `json:"targetCommit,omitempty"`
	Stable  string `json:"stableCommit,omitempty"`
	Message string `json:"message,omitempty"`
}

func rolloutState(set *flotillav1.ApplicationSet) *RolloutState {
	ro := set.Status.Rollout
	if ro == nil || set.Spec.Strategy == nil || set.Spec.Strategy.RollingUpdate == nil {
		return nil
	}
	steps := set.Spec.Strategy.RollingUpdate.Steps
	step := fmt.Sprintf("%d/%d", ro.CurrentStep+1, len(steps))
	if i := int(ro.CurrentStep); i < len(steps) && steps[i].Name != "" {
		step += " " + steps[i].Name
	}
	return &RolloutState{Phase: orUnknown(string(ro.Phase)), Step: step, Target: ro.TargetCommit, Stable: ro.StableCommit, Message: ro.Message}
}

// String is the PHASE column: "Baking 1/3 canary", or "-" without a strategy.
func (r *RolloutState) String() string {
	if r == nil {
		return "-"
	}
	if r.Phase == string(flotillav1.RolloutComplete) {
		return r.Phase
	}
	return r.Phase + " " + r.Step
}

// NotHealthyApp names one Application that needs a look.
type NotHealthyApp struct {
	Cluster     string `json:"cluster"`
	Application string `json:"application"`
	Health      string `json:"health,omitempty"`
	Sync        string `json:"sync,omitempty"`
	Message     string `json:"message,omitempty"`
}

// FleetStatus is `flotilla status -o json`.
type FleetStatus struct {
	ApplicationSets []SetStatus `json:"applicationSets"`
}

func setStatus(set *flotillav1.ApplicationSet) SetStatus {
	st := set.Status
	out := SetStatus{Namespace: set.Namespace, Name: set.Name, Clusters: st.Summary.Clusters, Applications: st.Summary.Applications,
		Synced: st.Summary.Synced, Healthy: st.Summary.Healthy, Progressing: st.Summary.Progressing, Degraded: st.Summary.Degraded, Unknown: st.Summary.Unknown, Status: "Unknown"}
	if len(st.Revisions) > 0 {
		r := st.Revisions[0]
		out.Rollout = &Rollout{Revision: r.Revision, Applications: r.Applications, Healthy: r.Healthy, Of: st.Summary.Applications}
	}
	out.Strategy = rolloutState(set)
	out.Project = orText(set.Spec.Template.Spec.Project, flotillav1.DefaultProject)
	if len(st.Conditions) == 0 && st.ObservedGeneration == 0 {
		out.Message = "the hub has not processed this set yet: is its namespace one the hub serves (flotilla-hub --application-set-namespaces, chart value applicationSetNamespaces)?"
	}
	// A generation error wins: it is what the user must fix.
	if c := apimeta.FindStatusCondition(st.Conditions, flotillav1.ConditionParametersGenerated); c != nil && c.Status == metav1.ConditionFalse {
		out.Status, out.Message = c.Reason, c.Message
	} else if c := apimeta.FindStatusCondition(st.Conditions, flotillav1.ConditionHealthy); c != nil {
		out.Status = c.Reason
		if c.Status != metav1.ConditionTrue {
			out.Message = c.Message
		}
	}
	for _, n := range st.NotHealthy {
		out.NotHealthy = append(out.NotHealthy, NotHealthyApp{Cluster: n.Cluster, Application: n.Application, Health: string(n.Health), Sync: string(n.Sync), Message: n.Message})
	}
	return out
}

func (r *Rollout) String() string {
	if r == nil {
		return "<none>"
	}
	return fmt.Sprintf("%d/%d on %s", r.Healthy, r.Of, git.ShortSHA(r.Revision))
}

func (o *statusOptions) fleet(ctx context.Context, hub *conn, w io.Writer, p palette) error {
	sets := &flotillav1.ApplicationSetList{}
	if err := hub.client.List(ctx, sets, client.InNamespace(o.namespace)); err != nil {
		return fmt.Errorf("list ApplicationSets: %w", err)
	}
	fs := FleetStatus{ApplicationSets: []SetStatus{}}
	for i := range sets.Items {
		fs.ApplicationSets = append(fs.ApplicationSets, setStatus(&sets.Items[i]))
	}
	return printFleet(w, o.output, fs, p)
}

func printFleet(w io.Writer, format string, fs FleetStatus, p palette) error {
	sort.Slice(fs.ApplicationSets, func(i, j int) bool {
		a, b := fs.ApplicationSets[i], fs.ApplicationSets[j]
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	switch format {
	case "json":
		return printJSON(w, fs)
	case "yaml":
		return printYAML(w, fs)
	}
	if len(fs.ApplicationSets) == 0 {
		_, err := io.WriteString(w, "No ApplicationSets: apply one with 'kubectl apply -f', or preview one with 'flotilla generate -f'.\n")
		return err
	}
	t := &table{header: []string{"NAMESPACE", "NAME", "CLUSTERS", "SYNCED", "HEALTHY", "PROGRESSING", "DEGRADED", "UNKNOWN", "ROLLOUT", "STATUS", "PHASE"}, colour: p, paint: map[int]bool{9: true}}
	if format == "wide" {
		t.header = append(t.header, "PROJECT", "MESSAGE")
	}
	for _, s := range fs.ApplicationSets {
		row := []string{s.Namespace, s.Name, itoa(s.Clusters), fmt.Sprintf("%d/%d", s.Synced, s.Applications), fmt.Sprintf("%d/%d", s.Healthy, s.Applications),
			itoa(s.Progressing), itoa(s.Degraded), itoa(s.Unknown), s.Rollout.String(), s.Status, s.Strategy.String()}
		if format == "wide" {
			row = append(row, s.Project, s.Message)
		}
		t.add(row...)
	}
	return t.write(w)
}

// AppStatus is one row of `flotilla status SET -o json`.
type AppStatus struct {
	Cluster     string       `json:"cluster"`
	Application string       `json:"application"`
	Sync        string       `json:"sync"`
	Health      string       `json:"health"`
	Revision    string       `json:"revision,omitempty"`
	Delivered   string       `json:"delivered"`
	Project     string       `json:"project"`
	Created     metav1.Time  `json:"created"`
	LastSync    *metav1.Time `json:"lastSync,omitempty"`
	Message     string       `json:"message,omitempty"`
}

// SetDetail is `flotilla status SET -o json`.
type SetDetail struct {
	SetStatus    `json:",inline"`
	Applications []AppStatus `json:"applications"`
}

func (o *statusOptions) set(ctx context.Context, hub *conn, name string, w io.Writer, p palette) error {
	set := &flotillav1.ApplicationSet{}
	if err := hub.client.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: name}, set); err != nil {
		return notFoundHint(err, "ApplicationSet", o.namespace+"/"+name, "flotilla status")
	}
	apps := &flotillav1.ApplicationList{}
	if err := hub.client.List(ctx, apps, client.InNamespace(o.namespace), client.MatchingLabels{flotillav1.LabelApplicationSet: name}); err != nil {
		return fmt.Errorf("list the Applications of %s/%s: %w", o.namespace, name, err)
	}
	d := SetDetail{SetStatus: setStatus(set), Applications: []AppStatus{}}
	for i := range apps.Items {
		d.Applications = append(d.Applications, appStatus(&apps.Items[i]))
	}
	return printSet(w, o.output, d, time.Now(), p)
}

func appStatus(a *flotillav1.Application) AppStatus {
	out := AppStatus{Cluster: a.Spec.Destination.Cluster, Application: a.Name, Sync: orUnknown(string(a.Status.Sync.Status)), Health: orUnknown(string(a.Status.Health.Status)),
		Revision: a.Status.Sync.Revision, Delivered: conditionWord(a.Status.Conditions, flotillav1.ConditionDelivered), Project: orText(a.Spec.Project, flotillav1.DefaultProject), Created: a.CreationTimestamp, LastSync: a.Status.LastSyncTime}
	healthy := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionHealthy)
	switch {
	case healthy != nil && healthy.Status == metav1.ConditionUnknown && darkReasons[healthy.Reason]:
		out.Message = healthy.Reason + ": " + healthy.Message
	case a.Status.LastSyncError != "":
		out.Message = a.Status.LastSyncError
	case out.Delivered != "True":
		if c := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionDelivered); c != nil {
			out.Message = c.Message
		}
	default:
		out.Message = a.Status.Health.Message
	}
	return out
}

// darkReasons are why the hub cannot know an Application's health: they
// explain its Unknown better than the last sync error.
var darkReasons = map[string]bool{
	flotillav1.ReasonClusterUnreachable: true, flotillav1.ReasonAgentUnavailable: true, flotillav1.ReasonAwaitingAgent: true,
	flotillav1.ReasonClusterNotFound: true, flotillav1.ReasonSpokeUnreadable: true,
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

func printSet(w io.Writer, format string, d SetDetail, now time.Time, p palette) error {
	sort.Slice(d.Applications, func(i, j int) bool {
		a, b := d.Applications[i], d.Applications[j]
		return a.Cluster+"/"+a.Application < b.Cluster+"/"+b.Application
	})
	switch format {
	case "json":
		return printJSON(w, d)
	case "yaml":
		return printYAML(w, d)
	}
	fmt.Fprintf(w, "ApplicationSet %s/%s: %d clusters, %d/%d healthy, rollout %s, %s\n", d.Namespace, d.Name, d.Clusters, d.Healthy, d.SetStatus.Applications, d.Rollout.String(), p.word(d.Status))
	if d.Message != "" {
		fmt.Fprintf(w, "  %s\n", d.Message)
	}
	if r := d.Strategy; r != nil {
		fmt.Fprintf(w, "Rolling update: %s at step %s, target %s, stable %s\n  %s\n", p.word(r.Phase), r.Step, git.ShortSHA(r.Target), git.ShortSHA(r.Stable), r.Message)
	}
	fmt.Fprintln(w)
	if len(d.Applications) == 0 {
		_, err := io.WriteString(w, "No Applications yet.\n")
		return err
	}
	t := &table{header: []string{"CLUSTER", "APPLICATION", "SYNC", "HEALTH", "REVISION", "AGE", "MESSAGE"}, colour: p, paint: map[int]bool{2: true, 3: true}}
	if format == "wide" {
		t.header = []string{"CLUSTER", "APPLICATION", "SYNC", "HEALTH", "REVISION", "DELIVERED", "PROJECT", "AGE", "LAST-SYNC", "MESSAGE"}
		t.paint = map[int]bool{2: true, 3: true, 5: true}
	}
	for _, a := range d.Applications {
		rev := "<none>"
		if a.Revision != "" {
			rev = git.ShortSHA(a.Revision)
		}
		msg := oneLine(a.Message, 80)
		if format == "wide" {
			last := "<never>"
			if a.LastSync != nil {
				last = age(a.LastSync.Time, now)
			}
			t.add(a.Cluster, a.Application, a.Sync, a.Health, rev, a.Delivered, a.Project, age(a.Created.Time, now), last, oneLine(a.Message, 200))
			continue
		}
		t.add(a.Cluster, a.Application, a.Sync, a.Health, rev, age(a.Created.Time, now), msg)
	}
	return t.write(w)
}

// oneLine keeps the first line of s, at most n runes.
func oneLine(s string, n int) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		s = s[:i]
	}
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
)

type rolloutOptions struct {
	hubOptions
	namespace string
	watch     bool
	timeout   time.Duration
	to        string
}

func newRolloutCommand(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Watch and steer an ApplicationSet's rolling update (status, pause, resume, promote, abort, rollback)",
		Long: `An ApplicationSet with strategy.type RollingUpdate moves its clusters to a
new commit step by step (status.rollout). These commands read and steer it,
as 'kubectl rollout' does for a Deployment:

  status    the phase, target and stable commits, and each step's counts
  pause     nothing moves until resume (new commits wait too)
  resume    carry on; the current step's bake time and deadline start again
  promote   end the current step now (bake or not, halted or not)
  abort     halt where it stands; nothing moves until promote or rollback
  rollback  every cluster back to the stable commit, or --to COMMIT (which
            becomes stable); the rolled-back commit is not rolled out again

pause and resume set or remove the set's flotilla.dev/rollout-paused
annotation; promote, abort and rollback write flotilla.dev/rollout-action,
which the hub removes once it has handled it. Each command waits until the
hub has handled it and prints the rollout's state.`,
		Example: `  flotilla rollout status guestbook -n apps --watch
  flotilla rollout pause guestbook
  flotilla rollout promote guestbook
  flotilla rollout rollback guestbook --to 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d`,
	}
	cmd.AddCommand(newRolloutStatusCommand(s))
	for _, a := range []struct{ name, short string }{
		{"pause", "Pause the rolling update: nothing moves until resume"},
		{"resume", "Resume a paused rolling update"},
		{"promote", "End the current step now and start the next one"},
		{"abort", "Halt the rolling update where it stands"},
		{"rollback", "Send every cluster back to the stable commit (or --to COMMIT)"},
	} {
		cmd.AddCommand(newRolloutActionCommand(s, a.name, a.short))
	}
	return cmd
}

func (o *rolloutOptions) bindCommon(cmd *cobra.Command, outputs string) {
	o.bind(cmd, outputs)
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the ApplicationSet (default: the kubeconfig context's)")
	f.DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait for the hub")
}

func newRolloutStatusCommand(s Streams) *cobra.Command {
	o := &rolloutOptions{}
	cmd := &cobra.Command{
		Use:   "status SET",
		Short: "Show a rolling update: phase, commits, steps",
		Long: `Show the rolling update of ApplicationSet SET: its phase, the target commit
(being rolled out) and the stable commit (last fully rolled out and
Healthy), and per step its Applications, how many run the target, are
Healthy there, failed or cannot be seen.

--watch prints the state again at each change until the rollout is Complete
(exit 0), Halted or RolledBack (exit 1), or --timeout passes (exit 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.status(cmd.Context(), s, args[0]) },
	}
	o.bindCommon(cmd, "table, json or yaml")
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "follow until the rollout ends")
	cmd.Flags().Lookup("timeout").DefValue = "10m0s"
	o.timeout = 10 * time.Minute
	return cmd
}

func newRolloutActionCommand(s Streams, action, short string) *cobra.Command {
	o := &rolloutOptions{}
	cmd := &cobra.Command{
		Use:   action + " SET",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.act(cmd.Context(), s, action, args[0]) },
	}
	o.bindCommon(cmd, "")
	if action == "rollback" {
		cmd.Flags().StringVar(&o.to, "to", "", "roll back to this commit (or tag or branch, resolved by the hub) instead of the stable commit")
	}
	return cmd
}

func (o *rolloutOptions) get(ctx context.Context, hub *conn, name string) (*flotillav1.ApplicationSet, error) {
	if o.namespace == "" {
		o.namespace = o.contextNamespace()
	}
	set := &flotillav1.ApplicationSet{}
	if err := hub.client.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: name}, set); err != nil {
		return nil, notFoundHint(err, "ApplicationSet", o.namespace+"/"+name, "flotilla status")
	}
	if rolloutState(set) == nil && (set.Spec.Strategy == nil || set.Spec.Strategy.Type != flotillav1.StrategyRollingUpdate) {
		return nil, fmt.Errorf("ApplicationSet %s/%s has no rolling update: give it spec.strategy.type RollingUpdate with rollingUpdate.steps (see 'flotilla rollout --help')", o.namespace, name)
	}
	return set, nil
}

func (o *rolloutOptions) status(ctx context.Context, s Streams, name string) error {
	if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
		return err
	}
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	last := ""
	for {
		set, err := o.get(ctx, hub, name)
		if err != nil {
			return err
		}
		ro := set.Status.Rollout
		if ro == nil {
			ro = &flotillav1.RolloutStatus{Message: "the hub has not reported on the rolling update yet"}
		}
		text, err := renderRollout(o.output, set, ro)
		if err != nil {
			return err
		}
		if text != last {
			if last != "" {
				fmt.Fprintln(s.Out)
			}
			fmt.Fprint(s.Out, text)
			last = text
		}
		if !o.watch {
			return nil
		}
		switch ro.Phase {
		case flotillav1.RolloutComplete:
			return nil
		case flotillav1.RolloutHalted, flotillav1.RolloutRolledBack:
			return fmt.Errorf("the rollout of %s is %s: %s", git.ShortSHA(ro.TargetCommit), ro.Phase, ro.Message)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s: the rollout is %s", o.timeout, orUnknown(string(ro.Phase)))
		case <-time.After(time.Second):
		}
	}
}

func renderRollout(format string, set *flotillav1.ApplicationSet, ro *flotillav1.RolloutStatus) (string, error) {
	var b strings.Builder
	switch format {
	case "json":
		return b.String(), printJSON(&b, ro)
	case "yaml":
		return b.String(), printYAML(&b, ro)
	}
	rs := rolloutState(set)
	step := "-"
	if rs != nil {
		step = rs.Step
	}
	fmt.Fprintf(&b, "Rollout of %s/%s: %s at step %s\n  target %s, stable %s\n  %s\n\n", set.Namespace, set.Name, orUnknown(string(ro.Phase)), step,
		orNone(git.ShortSHA(ro.TargetCommit)), orNone(git.ShortSHA(ro.StableCommit)), ro.Message)
	t := &table{header: []string{"STEP", "NAME", "APPS", "UPDATED", "HEALTHY", "FAILED", "UNKNOWN"}}
	for i, st := range ro.Steps {
		mark := itoa(i + 1)
		if int32(i) == ro.CurrentStep && ro.Phase != flotillav1.RolloutComplete {
			mark += " <"
		}
		t.add(mark, st.Name, itoa(st.Applications), itoa(st.Updated), itoa(st.Healthy), itoa(st.Failed), itoa(st.Unknown))
	}
	err := t.write(&b)
	return b.String(), err
}

// act asks the hub for one rollout action and waits until it is handled.
func (o *rolloutOptions) act(ctx context.Context, s Streams, action, name string) error {
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	set, err := o.get(ctx, hub, name)
	if err != nil {
		return err
	}
	patch := client.MergeFrom(set.DeepCopy())
	if set.Annotations == nil {
		set.Annotations = map[string]string{}
	}
	switch action {
	case "pause":
		set.Annotations[flotillav1.AnnotationRolloutPaused] = "true"
	case "resume":
		delete(set.Annotations, flotillav1.AnnotationRolloutPaused)
	default:
		// action[@token]: the token makes each request a new value.
		if action == "rollback" && o.to != "" {
			action += ":" + o.to
		}
		set.Annotations[flotillav1.AnnotationRolloutAction] = action + "@" + time.Now().UTC().Format("20060102T150405.000000000Z")
	}
	if err := hub.client.Patch(ctx, set, patch); err != nil {
		return fmt.Errorf("ask for %s of %s/%s: %w", action, o.namespace, name, err)
	}
	verb, _, _ := strings.Cut(action, ":")
	fmt.Fprintf(s.Out, "Asked the hub to %s the rollout of %s/%s; waiting for it.\n", verb, o.namespace, name)
	handled := func(cur *flotillav1.ApplicationSet) bool {
		ph := phaseOf(cur)
		switch action {
		case "pause":
			return ph == flotillav1.RolloutPaused || ph == flotillav1.RolloutHalted || ph == flotillav1.RolloutRolledBack
		case "resume":
			return ph != flotillav1.RolloutPaused
		}
		return cur.Annotations[flotillav1.AnnotationRolloutAction] == ""
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for {
		cur, err := o.get(ctx, hub, name)
		if err != nil {
			return err
		}
		if handled(cur) {
			ro := cur.Status.Rollout
			if ro == nil {
				ro = &flotillav1.RolloutStatus{}
			}
			text, err := renderRollout("table", cur, ro)
			if err != nil {
				return err
			}
			_, err = io.WriteString(s.Out, text)
			return err
		}
		select {
		case <-ctx.Done():
			return errors.New("the hub has not handled the request within --timeout: is flotilla-hub running? see its log and the set's Events (kubectl describe applicationset " + name + ")")
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func phaseOf(set *flotillav1.ApplicationSet) flotillav1.RolloutPhase {
	if set.Status.Rollout == nil {
		return ""
	}
	return set.Status.Rollout.Phase
}

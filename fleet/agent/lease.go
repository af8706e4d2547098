package agent

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// Heartbeat renews the agent's Lease, which the hub reads for AgentAvailable.
type Heartbeat struct {
	Client    client.Client
	Namespace string
	Identity  string
	Version   string
	// Interval between renewals (default 10s).
	Interval time.Duration
	// Duration is the Lease's leaseDurationSeconds: the hub counts the agent
	// gone once it passes without a renewal (default 4 × Interval).
	Duration time.Duration
}

// Start implements manager.Runnable.
func (h *Heartbeat) Start(ctx context.Context) error {
	if h.Interval == 0 {
		h.Interval = 10 * time.Second
	}
	if h.Duration <= h.Interval {
		h.Duration = 4 * h.Interval
	}
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		if err := h.renew(ctx); err != nil && ctx.Err() == nil {
			log.FromContext(ctx).Error(err, "Renew heartbeat Lease")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *Heartbeat) renew(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{}
	err := h.Client.Get(ctx, types.NamespacedName{Namespace: h.Namespace, Name: flotillav1.AgentLeaseName}, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: flotillav1.AgentLeaseName, Namespace: h.Namespace, Annotations: map[string]string{flotillav1.AnnotationAgentVersion: h.Version}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(h.Identity), LeaseDurationSeconds: ptr.To(h.seconds()),
				AcquireTime: &now, RenewTime: &now},
		}
		return h.Client.Create(ctx, lease)
	}
	if err != nil {
		return err
	}
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[flotillav1.AnnotationAgentVersion] = h.Version
	lease.Spec.HolderIdentity = ptr.To(h.Identity)
	lease.Spec.RenewTime = &now
	lease.Spec.LeaseDurationSeconds = ptr.To(h.seconds())
	return h.Client.Update(ctx, lease)
}

func (h *Heartbeat) seconds() int32 { return int32((h.Duration + time.Second - 1) / time.Second) }

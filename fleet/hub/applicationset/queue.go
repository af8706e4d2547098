package applicationset

import (
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

type workqueueTyped = workqueue.TypedRateLimitingInterface[reconcile.Request]

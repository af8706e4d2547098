package clusters

import "sigs.k8s.io/controller-runtime/pkg/controller"

// Probes may wait on slow spokes: run several at once so one never delays the others.
func ctrlOptions() controller.Options { return controller.Options{MaxConcurrentReconciles: 8} }

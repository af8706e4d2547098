package agent

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

// SyncOptionAdoptExisting lets an Application take over existing objects
// that no Flotilla Application manages (as flotilla.dev/adopt=true on each
// live object does for that object alone).
const SyncOptionAdoptExisting = "AdoptExisting=true"

// ErrNotOwned wraps every refusal to apply over an object the Application
// does not own.
var ErrNotOwned = errors.New("not owned by this Application")

// ownership decides whether app may apply over existing (nil: it creates
// the object). An object it created carries its name; one another
// Application manages is refused, naming that Application; any other
// existing object is taken over only with consent (adopt, or the
// flotilla.dev/adopt annotation on the object). What is not applied is not
// recorded, so prune and deletion never touch it.
func ownership(existing *unstructured.Unstructured, ref applied.Ref, app string, adopt bool) error {
	if existing == nil {
		return nil
	}
	ann := existing.GetAnnotations()
	switch owner := ann[flotillav1.AnnotationApplication]; {
	case owner == app:
		return nil
	case owner != "":
		return fmt.Errorf("%w: %s is managed by Application %s; an object belongs to one Application: remove it from one of them", ErrNotOwned, ref, owner)
	case adopt || ann[flotillav1.AnnotationAdopt] == "true":
		return nil
	default:
		return fmt.Errorf("%w: %s already exists and was not created by Flotilla; to let this Application take it over (and delete it with the Application), annotate it %s=true or add the sync option %s",
			ErrNotOwned, ref, flotillav1.AnnotationAdopt, SyncOptionAdoptExisting)
	}
}

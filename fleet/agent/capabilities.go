package agent

import (
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/discovery"
)

// Discovery reads the spoke's Kubernetes version and API versions for
// charts' .Capabilities, at most every ten minutes (a CRD installed by one
// Application shows up in the next renders).
type Discovery struct {
	Client discovery.DiscoveryInterface

	mu     sync.Mutex
	caps   Capabilities
	at     time.Time
	asking bool
}

const discoveryEvery = 10 * time.Minute

// Capabilities returns what discovery said last; on an error, the last
// good answer. One caller at a time asks the apiserver; the others get
// the last answer meanwhile.
func (d *Discovery) Capabilities() Capabilities {
	d.mu.Lock()
	if time.Since(d.at) < discoveryEvery || d.asking {
		defer d.mu.Unlock()
		return d.caps
	}
	d.at, d.asking = time.Now(), true
	last := d.caps
	d.mu.Unlock()
	caps := d.discover(last)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.caps, d.asking = caps, false
	return caps
}

func (d *Discovery) discover(last Capabilities) Capabilities {
	v, err := d.Client.ServerVersion()
	if err != nil {
		return last
	}
	caps := Capabilities{KubeVersion: v.GitVersion}
	// Partial results are fine: an aggregated API that is down must not hide the rest.
	_, lists, _ := d.Client.ServerGroupsAndResources()
	for _, l := range lists {
		caps.APIVersions = append(caps.APIVersions, l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // a subresource
			}
			caps.APIVersions = append(caps.APIVersions, l.GroupVersion+"/"+r.Kind)
		}
	}
	return caps
}

func (r *Reconciler) capabilities() Capabilities {
	if r.Discovery == nil {
		return Capabilities{}
	}
	return r.Discovery.Capabilities()
}

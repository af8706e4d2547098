package dashboard

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/status"
	"github.com/flotilla-dev/flotilla/internal/git"
)

// Page bounds: the browser never gets the whole fleet.
const (
	SetsPerPage = 25
	MaxColumns  = 150
	MaxAppRows  = 500
)

type cell struct {
	Health, Sync, Revision, Message, Link string
	Present                               bool
}

type fleetRow struct {
	Namespace, Name, Link string
	Counts                flotillav1.ApplicationCounts
	Cells                 []cell
}

type fleetPage struct {
	Counts                   flotillav1.ApplicationCounts
	Sets, Clusters, Shown    int
	Columns                  []string
	ColumnLinks              []string
	Rows                     []fleetRow
	Selector, SetFilter      string
	Health                   string
	Healths                  []string
	Page, Pages              int
	Prev, Next               string
	ColumnsCut, ClustersOnly int
	Error                    string
}

var healths = []string{"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}

// buildFleet is the grid: sets (rows, paged) × clusters (columns, filtered
// by a label selector), each cell one Application.
func buildFleet(s *snapshot, q url.Values) *fleetPage {
	p := &fleetPage{Selector: q.Get("selector"), SetFilter: q.Get("set"), Health: q.Get("health"), Healths: healths, Sets: len(s.sets)}
	sel := labels.Everything()
	if p.Selector != "" {
		parsed, err := labels.Parse(p.Selector)
		if err != nil {
			p.Error = "cluster selector: " + err.Error()
		} else {
			sel = parsed
		}
	}
	// Columns: the MemberClusters the user may read that match, else the
	// clusters the Applications name.
	known := map[string]bool{}
	if s.clustersKnown {
		for _, mc := range s.clusters {
			if sel.Matches(labels.Set(mc.Labels)) {
				known[mc.Name] = true
			}
		}
		p.Clusters = len(s.clusters)
	} else {
		for _, a := range s.apps {
			known[a.Spec.Destination.Cluster] = true
		}
		p.Clusters = len(known)
	}
	cols := make([]string, 0, len(known))
	for c := range known {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	if len(cols) > MaxColumns {
		p.ColumnsCut = len(cols) - MaxColumns
		cols = cols[:MaxColumns]
	}
	colIndex := map[string]int{}
	for i, c := range cols {
		colIndex[c] = i
	}
	p.Columns = cols
	for _, c := range cols {
		p.ColumnLinks = append(p.ColumnLinks, "/clusters/"+url.PathEscape(c))
	}
	bySet := map[string][]flotillav1.Application{}
	for _, a := range s.apps {
		set := a.Labels[flotillav1.LabelApplicationSet]
		bySet[a.Namespace+"/"+set] = append(bySet[a.Namespace+"/"+set], a)
	}
	p.Counts = status.Count(s.apps)
	var rows []fleetRow
	for _, set := range s.sets {
		if p.SetFilter != "" && !strings.Contains(set.Namespace+"/"+set.Name, p.SetFilter) {
			continue
		}
		apps := bySet[set.Namespace+"/"+set.Name]
		if p.Health != "" && !slices.ContainsFunc(apps, func(a flotillav1.Application) bool { return string(healthOf(&a)) == p.Health }) {
			continue
		}
		rows = append(rows, fleetRow{Namespace: set.Namespace, Name: set.Name, Link: setLink(set.Namespace, set.Name), Counts: status.Count(apps)})
	}
	p.Shown = len(rows)
	p.Pages = max(1, (len(rows)+SetsPerPage-1)/SetsPerPage)
	if _, err := fmt.Sscan(q.Get("page"), &p.Page); err != nil {
		p.Page = 1
	}
	p.Page = min(max(p.Page, 1), p.Pages)
	start := (p.Page - 1) * SetsPerPage
	rows = rows[start:min(start+SetsPerPage, len(rows))]
	for i := range rows {
		cells := make([]cell, len(cols))
		for _, a := range bySet[rows[i].Namespace+"/"+rows[i].Name] {
			if j, ok := colIndex[a.Spec.Destination.Cluster]; ok {
				cells[j].add(&a)
			}
		}
		rows[i].Cells = cells
	}
	p.Rows = rows
	page := func(n int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", fmt.Sprint(n))
		return "/?" + v.Encode()
	}
	if p.Page > 1 {
		p.Prev = page(p.Page - 1)
	}
	if p.Page < p.Pages {
		p.Next = page(p.Page + 1)
	}
	return p
}

// add puts one more of the set's Applications on this cluster into the
// cell: the worst health shows (and links to that Application), any one
// out of sync marks the cell, and the message lists each Application.
func (c *cell) add(a *flotillav1.Application) {
	h := string(healthOf(a))
	line := a.Name + ": " + h
	if msg := a.Status.Health.Message; msg != "" && h != string(flotillav1.HealthHealthy) {
		line += " — " + msg
	}
	if !c.Present || worse(h, c.Health) {
		c.Health, c.Revision, c.Link = h, git.ShortSHA(a.Status.Sync.Revision), appLink(a.Namespace, a.Name)
	}
	if !c.Present || a.Status.Sync.Status != flotillav1.SyncStatusSynced {
		c.Sync = string(a.Status.Sync.Status)
	}
	if c.Message != "" {
		line = c.Message + "\n" + line
	}
	c.Message, c.Present = line, true
}

// severity orders healths for a cell: the worst shows.
var severity = map[string]int{"Healthy": 0, "Suspended": 1, "Progressing": 2, "Missing": 3, "Unknown": 4, "Degraded": 5}

func worse(a, b string) bool { return severity[a] > severity[b] }

func healthOf(a *flotillav1.Application) flotillav1.HealthStatusCode {
	if a.Status.Health.Status == "" {
		return flotillav1.HealthUnknown
	}
	return a.Status.Health.Status
}

func setLink(ns, name string) string {
	return "/sets/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}
func appLink(ns, name string) string {
	return "/apps/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

type appRow struct {
	Name, Link, Cluster, ClusterLink, Health, Sync, Revision, Message, LastSync string
	DriftCorrections                                                            int64
}

func appRows(apps []flotillav1.Application) ([]appRow, int) {
	slices.SortFunc(apps, func(a, b flotillav1.Application) int {
		return compareKeys(a.Spec.Destination.Cluster, a.Name, b.Spec.Destination.Cluster, b.Name)
	})
	cut := 0
	if len(apps) > MaxAppRows {
		cut = len(apps) - MaxAppRows
		apps = apps[:MaxAppRows]
	}
	rows := make([]appRow, 0, len(apps))
	for _, a := range apps {
		msg := a.Status.Health.Message
		if a.Status.LastSyncError != "" {
			msg = a.Status.LastSyncError
		}
		if c := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionHealthy); c != nil && c.Status == metav1.ConditionUnknown && msg == "" {
			msg = c.Message
		}
		rows = append(rows, appRow{Name: a.Name, Link: appLink(a.Namespace, a.Name), Cluster: a.Spec.Destination.Cluster, ClusterLink: "/clusters/" + url.PathEscape(a.Spec.Destination.Cluster),
			Health: string(healthOf(&a)), Sync: string(a.Status.Sync.Status), Revision: git.ShortSHA(a.Status.Sync.Revision), Message: msg, LastSync: ago(a.Status.LastSyncTime), DriftCorrections: a.Status.DriftCorrections})
	}
	return rows, cut
}

func ago(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return duration.HumanDuration(time.Since(t.Time)) + " ago"
}

type eventRow struct{ Type, Reason, Message, Age string }

func eventRows(evs []corev1.Event) []eventRow {
	out := make([]eventRow, 0, len(evs))
	for _, e := range evs {
		t := metav1.NewTime(lastSeen(e))
		msg := e.Message
		if e.Count > 1 {
			msg += fmt.Sprintf(" (×%d)", e.Count)
		}
		out = append(out, eventRow{Type: e.Type, Reason: e.Reason, Message: msg, Age: ago(&t)})
	}
	return out
}

type setPage struct {
	Set        *flotillav1.ApplicationSet
	Conditions []metav1.Condition
	Clusters   []string
	Apps       []appRow
	AppsCut    int
	Events     []eventRow
}

func buildSet(s *snapshot, set *flotillav1.ApplicationSet, evs []corev1.Event) *setPage {
	var apps []flotillav1.Application
	clusters := map[string]bool{}
	for _, a := range s.apps {
		if a.Namespace == set.Namespace && a.Labels[flotillav1.LabelApplicationSet] == set.Name {
			apps = append(apps, a)
			clusters[a.Spec.Destination.Cluster] = true
		}
	}
	p := &setPage{Set: set, Conditions: set.Status.Conditions, Events: eventRows(evs)}
	for c := range clusters {
		p.Clusters = append(p.Clusters, c)
	}
	sort.Strings(p.Clusters)
	p.Apps, p.AppsCut = appRows(apps)
	return p
}

type clusterPage struct {
	Name       string
	Cluster    *flotillav1.MemberCluster
	Labels     []string
	Conditions []metav1.Condition
	Heartbeat  string
	Apps       []appRow
	AppsCut    int
	Counts     flotillav1.ApplicationCounts
}

func buildCluster(s *snapshot, name string) *clusterPage {
	p := &clusterPage{Name: name}
	for i := range s.clusters {
		if s.clusters[i].Name == name {
			p.Cluster = &s.clusters[i]
		}
	}
	if p.Cluster != nil {
		for k, v := range p.Cluster.Labels {
			p.Labels = append(p.Labels, k+"="+v)
		}
		sort.Strings(p.Labels)
		p.Conditions = p.Cluster.Status.Conditions
		p.Heartbeat = ago(p.Cluster.Status.LastHeartbeatTime)
	}
	var apps []flotillav1.Application
	for _, a := range s.apps {
		if a.Spec.Destination.Cluster == name {
			apps = append(apps, a)
		}
	}
	p.Counts = status.Count(apps)
	p.Apps, p.AppsCut = appRows(apps)
	return p
}

type appPage struct {
	App        *flotillav1.Application
	Health     string
	Source     string
	CommitLink string
	CommitTime string
	LastSync   string
	Conditions []metav1.Condition
	Resources  []flotillav1.ResourceStatus
	SetLink    string
	Events     []eventRow
}

func buildApp(a *flotillav1.Application, evs []corev1.Event) *appPage {
	src := a.Spec.Source
	where := src.Path
	if src.Chart != "" {
		where = "chart " + src.Chart
	}
	p := &appPage{App: a, Health: string(healthOf(a)), Source: fmt.Sprintf("%s (%s) %s", git.RedactURL(src.RepoURL), orHEAD(src.TargetRevision), where),
		Conditions: a.Status.Conditions, Resources: a.Status.Resources, LastSync: ago(a.Status.LastSyncTime), Events: eventRows(evs)}
	if src.Chart == "" {
		p.CommitLink = CommitLink(src.RepoURL, a.Status.Sync.Revision)
	}
	if a.Status.Sync.CommitTime != nil {
		p.CommitTime = a.Status.Sync.CommitTime.UTC().Format(time.RFC3339)
	}
	if set := a.Labels[flotillav1.LabelApplicationSet]; set != "" {
		p.SetLink = setLink(a.Namespace, set)
	}
	return p
}

func orHEAD(rev string) string {
	if rev == "" {
		return "HEAD"
	}
	return rev
}

// forges are the hosts whose commit pages have a known address.
var forges = map[string]string{
	"github.com":    "%s/commit/%s",
	"gitlab.com":    "%s/-/commit/%s",
	"bitbucket.org": "%s/commits/%s",
	"codeberg.org":  "%s/commit/%s",
}

// CommitLink is the web page of a commit when repoURL is on a known forge
// (https or SSH URLs), else "".
func CommitLink(repoURL, sha string) string {
	key := git.RepositoryKey(repoURL)
	host, path, ok := strings.Cut(key, "/")
	format, known := forges[host]
	if sha == "" || !ok || !known || !strings.Contains(path, "/") {
		return ""
	}
	return fmt.Sprintf(format, "https://"+host+"/"+path, url.PathEscape(sha))
}

package dashboard

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func TestCommitLink(t *testing.T) {
	sha := "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	for repo, want := range map[string]string{
		"https://github.com/org/deploy.git":      "https://github.com/org/deploy/commit/" + sha,
		"git@github.com:org/deploy.git":          "https://github.com/org/deploy/commit/" + sha,
		"https://gitlab.com/group/sub/deploy":    "https://gitlab.com/group/sub/deploy/-/commit/" + sha,
		"ssh://git@bitbucket.org/team/repo.git":  "https://bitbucket.org/team/repo/commits/" + sha,
		"https://codeberg.org/org/deploy/":       "https://codeberg.org/org/deploy/commit/" + sha,
		"https://git.example.com/org/deploy.git": "",
		"https://github.com/justone":             "",
	} {
		assert.Equal(t, want, CommitLink(repo, sha), repo)
	}
	assert.Empty(t, CommitLink("https://github.com/org/deploy.git", ""))
}

// TestFleetGrid: one row per set, paged; a cell shows the worst of the
// set's Applications on that cluster; the cluster selector filters the
// columns and the health filter the rows.
func TestFleetGrid(t *testing.T) {
	s := &snapshot{clustersKnown: true}
	for i := range 3 {
		s.clusters = append(s.clusters, flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i), Labels: map[string]string{"env": []string{"prod", "dev", "prod"}[i]}}})
	}
	for n := range 30 {
		set := fmt.Sprintf("set-%02d", n)
		s.sets = append(s.sets, flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: set}})
		for i := range 3 {
			for _, app := range []string{"a", "b"} {
				h := flotillav1.HealthHealthy
				if n == 7 && i == 2 && app == "b" {
					h = flotillav1.HealthDegraded
				}
				s.apps = append(s.apps, flotillav1.Application{
					ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("%s-c%d-%s", set, i, app), Labels: map[string]string{flotillav1.LabelApplicationSet: set}},
					Spec:       flotillav1.ApplicationSpec{Destination: flotillav1.ApplicationDestination{Cluster: fmt.Sprintf("c%d", i)}},
					Status:     flotillav1.ApplicationStatus{Health: flotillav1.HealthStatus{Status: h, Message: "why"}, Sync: flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced}}})
			}
		}
	}
	p := buildFleet(s, url.Values{})
	assert.Equal(t, int32(180), p.Counts.Total)
	assert.Len(t, p.Rows, SetsPerPage)
	assert.Equal(t, 2, p.Pages)
	assert.NotEmpty(t, p.Next)
	assert.Equal(t, []string{"c0", "c1", "c2"}, p.Columns)
	row := p.Rows[7]
	require.Equal(t, "set-07", row.Name)
	assert.Equal(t, "Degraded", row.Cells[2].Health, "the worst Application shows")
	assert.Equal(t, appLink("ns", "set-07-c2-b"), row.Cells[2].Link)
	assert.Contains(t, row.Cells[2].Message, "set-07-c2-a: Healthy")
	assert.Equal(t, "Healthy", row.Cells[1].Health)

	p = buildFleet(s, url.Values{"page": {"2"}})
	assert.Len(t, p.Rows, 5)
	assert.Empty(t, p.Next)

	p = buildFleet(s, url.Values{"selector": {"env=prod"}, "health": {"Degraded"}})
	assert.Equal(t, []string{"c0", "c2"}, p.Columns)
	require.Len(t, p.Rows, 1)
	assert.Equal(t, "set-07", p.Rows[0].Name)

	p = buildFleet(s, url.Values{"selector": {"env in (("}})
	assert.Contains(t, p.Error, "cluster selector")
}

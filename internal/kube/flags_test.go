package kube

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommaList(t *testing.T) {
	list := []string{"old"}
	set := CommaList(&list)
	require.NoError(t, set(" env, ,region ,fleet.example.com/*"))
	assert.Equal(t, []string{"env", "region", "fleet.example.com/*"}, list)
	require.NoError(t, set(""))
	assert.Empty(t, list)
}

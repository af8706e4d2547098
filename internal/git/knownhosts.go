package git

import (
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsCallback checks host keys against known_hosts content given
// inline (as in a Secret), without touching the filesystem.
func knownHostsCallback(content string) (ssh.HostKeyCallback, error) {
	type hostKey struct {
		patterns []string
		key      ssh.PublicKey
	}
	var keys []hostKey
	rest := []byte(content)
	for len(rest) > 0 {
		_, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			if strings.Contains(err.Error(), "EOF") {
				break
			}
			return nil, err
		}
		keys = append(keys, hostKey{patterns: hosts, key: key})
		rest = next
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no host keys found")
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		addr := knownhosts.Normalize(hostname)
		for _, k := range keys {
			for _, p := range k.patterns {
				if (p == addr || p == hostname || knownhosts.Normalize(p) == addr) && string(k.key.Marshal()) == string(key.Marshal()) {
					return nil
				}
			}
		}
		return fmt.Errorf("host key of %s is not in sshKnownHosts", hostname)
	}, nil
}

package gittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSH is a real SSH server on 127.0.0.1 that runs git-upload-pack for the
// repositories of a Server, for one key.
type SSH struct {
	// Addr is host:port; KnownHosts pins its host key; ClientKey is the
	// one private key (OpenSSH PEM) it lets in.
	Addr       string
	KnownHosts string
	ClientKey  string
	// OtherKnownHosts pins a host key this server does not have.
	OtherKnownHosts string
}

// URL is the ssh:// URL of one of the Server's repositories.
func (s *SSH) URL(r *Repo) string { return fmt.Sprintf("ssh://git@%s/%s.git", s.Addr, r.Name) }

// ServeSSH starts an SSH server for the repositories of s until the test ends.
func (s *Server) ServeSSH(t testing.TB) *SSH {
	t.Helper()
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	check(t, err)
	block, err := gossh.MarshalPrivateKey(clientPriv, "")
	check(t, err)
	allowed, err := gossh.NewPublicKey(clientPub)
	check(t, err)
	hostSigner, hostPub := newSigner(t)
	_, otherPub := newSigner(t)

	srv := &gliderssh.Server{
		Handler: func(sess gliderssh.Session) { s.uploadPack(sess) },
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			return gliderssh.KeysEqual(key, allowed)
		},
	}
	srv.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()
	host := knownhosts.Normalize(addr)
	return &SSH{Addr: addr, ClientKey: string(pem.EncodeToMemory(block)),
		KnownHosts: knownhosts.Line([]string{host}, hostPub) + "\n", OtherKnownHosts: knownhosts.Line([]string{host}, otherPub) + "\n"}
}

// uploadPack serves `git-upload-pack '/name.git'` (all go-git asks for).
func (s *Server) uploadPack(sess gliderssh.Session) {
	args := sess.Command()
	if len(args) != 2 || args[0] != "git-upload-pack" {
		_, _ = io.WriteString(sess.Stderr(), "only git-upload-pack is served\n")
		_ = sess.Exit(1)
		return
	}
	name := filepath.Base(strings.Trim(args[1], "'/"))
	cmd := exec.Command("git-upload-pack", filepath.Join(s.Root, name))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sess, sess, sess.Stderr()
	if err := cmd.Run(); err != nil {
		_ = sess.Exit(1)
		return
	}
	_ = sess.Exit(0)
}

func newSigner(t testing.TB) (gossh.Signer, gossh.PublicKey) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	check(t, err)
	signer, err := gossh.NewSignerFromKey(priv)
	check(t, err)
	return signer, signer.PublicKey()
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("gittest: %v", err)
	}
}

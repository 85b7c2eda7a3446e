package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// localServer is a throwaway cluster run from this machine's PostgreSQL binaries.
type localServer struct {
	bindir string
	dir    string // temporary directory: data/, socket/, postgres.log
	port   int
	cred   *syscall.Credential // nil unless running as root

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// findBindir locates a directory holding both postgres and initdb.
func findBindir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	return "", errors.New("no PostgreSQL server binaries: postgres/initdb not on PATH, not in pg_config --bindir, nor in /usr/lib/postgresql/*/bin")
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

func startLocal(ctx context.Context, cfg config) (_ backend, err error) {
	bindir, err := findBindir()
	if err != nil {
		return nil, err
	}
	if swept := sweepLocal(); len(swept) > 0 {
		cfg.logger.Info("pgtest: removed local clusters left by test binaries that were killed", "dirs", swept)
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("make cluster directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(selfOwner()), 0o644); err != nil {
		return nil, fmt.Errorf("record the cluster's owner: %w", err)
	}
	s := &localServer{bindir: bindir, dir: dir}
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, postgres must run as an unprivileged user, but user \"postgres\" is missing: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("chown cluster directory to postgres: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod cluster directory: %w", err)
	}
	if err := s.mkdirs(); err != nil {
		return nil, err
	}
	if err := s.initCluster(ctx, cfg.initdbCache); err != nil {
		return nil, err
	}
	// A free port can be taken by someone else between choosing and binding it: retry.
	for attempt := 0; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "could not bind") {
			return nil, err
		}
	}
}

func (s *localServer) data() string   { return filepath.Join(s.dir, "data") }
func (s *localServer) socket() string { return filepath.Join(s.dir, "socket") }
func (s *localServer) log() string    { return filepath.Join(s.dir, "postgres.log") }

func (s *localServer) mkdirs() error {
	for _, d := range []string{s.data(), s.socket()} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
		if s.cred != nil {
			if err := os.Chown(d, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return fmt.Errorf("chown %s: %w", d, err)
			}
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs postgres in its own process group and waits until it accepts connections.
func (s *localServer) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.log(), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logf.Close()
	args := []string{"-D", s.data(), "-p", strconv.Itoa(s.port), "-k", s.socket()}
	args = append(args, serverArgs()...)
	// A local cluster is throwaway and shares the machine: no fsync, little memory, quiet.
	args = append(args, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "shared_buffers=32MB", "-c", "log_min_messages=warning")
	cmd := exec.Command(filepath.Join(s.bindir, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// Its own process group: Pause/Resume signal the whole server, and a Ctrl-C meant for
	// the program does not stop the server before the program has cleaned up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return s.waitReady(ctx, exited)
}

// waitReady polls a connection with backoff until the server answers, it exits, or 60s pass.
func (s *localServer) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(cctx, s.dsn()+"&connect_timeout=2")
		ccancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-exited:
			t.Stop()
			return fmt.Errorf("postgres exited while starting: %s", s.logTail())
		case <-ctx.Done():
			t.Stop()
			s.kill()
			return fmt.Errorf("postgres not ready on port %d: %w (last: %v): %s", s.port, ctx.Err(), err, s.logTail())
		case <-t.C:
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

func (s *localServer) logTail() string {
	b, _ := os.ReadFile(s.log())
	return tail(b)
}

// tail keeps the last lines of a program's output for an error message.
func tail(b []byte) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return string(bytes.Join(lines, []byte(" | ")))
}

func (s *localServer) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// stop asks for a fast shutdown (SIGINT) and kills the process group after 15s.
func (s *localServer) stop() error {
	_ = s.signal(syscall.SIGCONT) // a paused server cannot shut down
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	pgid := cmd.Process.Pid
	if err := syscall.Kill(pgid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-exited:
		return nil
	case <-t.C:
		for _, pid := range children(pgid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
		return errors.New("postgres did not shut down within 15s: killed")
	}
}

func (s *localServer) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

func (s *localServer) restart(ctx context.Context) error {
	if err := s.stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// signal sends sig to the postmaster and every process it started: each backend calls
// setsid(), so signalling the postmaster's process group alone would miss them.
func (s *localServer) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return errors.New("postgres is not running")
	}
	pm := cmd.Process.Pid
	if sig == syscall.SIGSTOP {
		// Stop the postmaster first so that it starts no backend we would miss.
		if err := syscall.Kill(pm, sig); err != nil {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
	}
	for _, pid := range children(pm) {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %v to backend %d: %w", sig, pid, err)
		}
	}
	if sig != syscall.SIGSTOP {
		if err := syscall.Kill(pm, sig); err != nil {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
	}
	return nil
}

// children lists the processes whose parent is pid (from /proc).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 {
			if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
				out = append(out, child)
			}
		}
	}
	return out
}

func (s *localServer) pause(context.Context) error  { return s.signal(syscall.SIGSTOP) }
func (s *localServer) resume(context.Context) error { return s.signal(syscall.SIGCONT) }

func (s *localServer) close() error {
	err := s.stop()
	if rerr := os.RemoveAll(s.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove cluster directory: %w", rerr))
	}
	return err
}

// initdbArgs are the arguments of initdb after -D; they are part of the cache key.
var initdbArgs = []string{"-U", "postgres", "--no-locale", "-E", "UTF8", "-A", "trust", "--no-sync", "--no-instructions",
	"--wal-segsize=1"} // 1 MB WAL segments: a fresh cluster is 24 MB instead of 39 to copy

// initCluster fills the data directory: a copy of a cached freshly-initialised cluster when
// there is one for these binaries, else initdb (whose result is then cached, best effort).
func (s *localServer) initCluster(ctx context.Context, useCache bool) error {
	cached := ""
	if useCache {
		cached = s.cachedCluster()
	}
	if cached != "" {
		if _, err := os.Stat(filepath.Join(cached, "PG_VERSION")); err == nil {
			if err := copyTree(ctx, cached, s.data()); err == nil {
				return nil
			}
			// A broken cache entry: start over with initdb.
			_ = os.RemoveAll(s.data())
			if err := s.mkdirs(); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(s.bindir, "initdb"), append([]string{"-D", s.data()}, initdbArgs...)...)
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, tail(out))
	}
	if cached != "" {
		// Copy aside, then rename: a concurrent builder's rename wins, ours is dropped.
		tmp := fmt.Sprintf("%s.tmp-%d", cached, os.Getpid())
		_ = os.RemoveAll(tmp)
		if err := os.MkdirAll(tmp, 0o700); err == nil {
			if err := copyTree(ctx, s.data(), tmp); err != nil || os.Rename(tmp, cached) != nil {
				_ = os.RemoveAll(tmp)
			} else {
				// Entries for binaries or arguments of the past are of no more use.
				old, _ := filepath.Glob(filepath.Join(filepath.Dir(cached), "initdb-*"))
				for _, o := range old {
					if o != cached && !strings.Contains(filepath.Base(o), ".tmp-") {
						_ = os.RemoveAll(o)
					}
				}
			}
		}
	}
	return nil
}

// cachedCluster is where a freshly-initialised cluster for these binaries is cached
// ($XDG_CACHE_HOME or ~/.cache, sessionsafe/pgtest/initdb-<key>), "" when there is no cache
// directory.
func (s *localServer) cachedCluster() string {
	root, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	h := fnv.New64a()
	fmt.Fprintln(h, s.bindir, strings.Join(initdbArgs, " "), s.cred != nil)
	for _, prog := range []string{"postgres", "initdb"} {
		fi, err := os.Stat(filepath.Join(s.bindir, prog))
		if err != nil {
			return ""
		}
		fmt.Fprintln(h, prog, fi.Size(), fi.ModTime().UnixNano())
	}
	dir := filepath.Join(root, "sessionsafe", "pgtest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("initdb-%016x", h.Sum64()))
}

// copyTree copies the contents of src into the existing directory dst, keeping modes and
// owners (cp -a).
func copyTree(ctx context.Context, src, dst string) error {
	out, err := exec.CommandContext(ctx, "cp", "-a", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s: %w: %s", src, err, tail(out))
	}
	return nil
}

package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/sessionsafe/sessionsafe/internal/redact"
)

// ReadyLinesLabel is the image label that says how many times the image prints "database
// system is ready to accept connections" before it serves. The official image prints it
// twice (an init server first); the image of make pg-image prints it once and says so with
// this label. Without the label, 2 is assumed.
const ReadyLinesLabel = "org.sessionsafe.postgres.ready-lines"

const readyLine = "database system is ready to accept connections"

// ryukOnce turns the testcontainers reaper off unless the environment chose already: its
// image cannot be pulled in closed networks, and pgtest terminates its containers itself.
var ryukOnce sync.Once

func disableRyuk() {
	ryukOnce.Do(func() {
		if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
			_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		}
	})
}

// dockerServer is a container run through testcontainers-go's postgres module, published on
// a fixed loopback port so that a restart keeps the address.
type dockerServer struct {
	cli  *testcontainers.DockerClient
	ctr  *postgres.PostgresContainer
	url  string
	port int
}

func startDocker(ctx context.Context, cfg config, auto bool) (_ backend, err error) {
	disableRyuk()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker not reachable: %w", err)
	}
	defer func() {
		if err != nil {
			_ = cli.Close()
		}
	}()
	if swept := sweepDocker(ctx, cli); len(swept) > 0 {
		cfg.logger.Info("pgtest: removed containers left by test binaries that were killed", "containers", swept)
	}
	owner := cfg.owner
	if owner == "" {
		owner = selfOwner()
	}
	host, _ := os.Hostname()
	present := func(image string) bool {
		_, err := cli.ImageInspect(ctx, image)
		return err == nil
	}
	image, looked := pickImage(cfg.image, present)
	readyLines := 2
	img, ierr := cli.ImageInspect(ctx, image)
	switch {
	case ierr == nil:
		if img.Config != nil {
			if n, err := strconv.Atoi(img.Config.Labels[ReadyLinesLabel]); err == nil && n > 0 {
				readyLines = n
			}
		}
	case auto:
		// Trying a pull here could hang for minutes in a closed network: auto only uses
		// images that are present. docker pull it, or choose the provider explicitly.
		return nil, fmt.Errorf("no image present locally (looked for %s): make pg-image builds %s offline; or docker pull %s, or set %s=docker to let testcontainers pull it",
			strings.Join(looked, ", then "), LocalImage, image, EnvProvider)
	}
	password := randomHex(12)
	var ctr *postgres.PostgresContainer
	var port int
	// The published port is chosen here (so that a restart keeps it); someone else may take
	// it before Docker binds it: retry with another.
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		ctr, err = postgres.Run(ctx, image,
			postgres.WithUsername("postgres"),
			postgres.WithPassword(password),
			postgres.WithDatabase("postgres"),
			testcontainers.WithCmdArgs(serverArgs()...),
			testcontainers.WithLabels(map[string]string{labelPgtest: "1", labelOwner: owner, labelHost: host}),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.ShmSize = 256 << 20 // Docker's 64 MB default starves parallel queries' shared memory
				hc.PortBindings = network.PortMap{
					network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}},
				}
			}),
			testcontainers.WithLogger(tcLogger{cfg.logger}),
			testcontainers.WithWaitStrategyAndDeadline(2*time.Minute,
				wait.ForLog(readyLine).WithOccurrence(readyLines)),
		)
		if err == nil {
			break
		}
		// The container exists even when Run fails: terminate it before looking at the error.
		if ctr != nil {
			_ = ctr.Terminate(context.WithoutCancel(ctx))
		}
		msg := err.Error()
		if attempt >= 3 || !(strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")) {
			if ierr != nil {
				return nil, fmt.Errorf("run %s: not present locally (looked for %s) and not pulled: %w (make pg-image builds %s offline, and pgtest runs it when no image is chosen)",
					image, strings.Join(looked, ", then "), err, LocalImage)
			}
			return nil, fmt.Errorf("run %s: %w", image, err)
		}
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password),
		Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/postgres", RawQuery: "sslmode=disable"}
	s := &dockerServer{cli: cli, ctr: ctr, url: u.String(), port: port}
	if err := s.waitReady(ctx); err != nil {
		_ = s.close()
		return nil, err
	}
	return s, nil
}

// pickImage returns the image to run and the images looked for, in order: the chosen one
// (WithImage, SESSIONSAFE_PG_IMAGE) alone; else LocalImage when present, else DefaultImage.
func pickImage(chosen string, present func(string) bool) (image string, looked []string) {
	if chosen != "" {
		return chosen, []string{chosen}
	}
	if present(LocalImage) {
		return LocalImage, []string{LocalImage}
	}
	return DefaultImage, []string{LocalImage, DefaultImage}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitReady polls a real connection: the log line says the server is up, this says its
// published port answers (and, after a restart, the old log lines say nothing).
func (s *dockerServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(cctx, s.url+"&connect_timeout=2")
		ccancel()
		if err == nil {
			return conn.Close(ctx)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("postgres in container not ready on 127.0.0.1:%d: %w (last: %v)", s.port, ctx.Err(), redact.NewSecrets(s.url).Hide(err.Error()))
		case <-t.C:
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
}

func (s *dockerServer) dsn() string { return s.url }

func (s *dockerServer) restart(ctx context.Context) error {
	// A paused container would only be killed at the end of the stop timeout.
	if err := s.resume(ctx); err != nil {
		return err
	}
	timeout := 10 * time.Second
	if err := s.ctr.Stop(ctx, &timeout); err != nil {
		return err
	}
	if err := s.ctr.Start(ctx); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

// paused asks Docker whether the container is paused.
func (s *dockerServer) paused(ctx context.Context) (bool, error) {
	res, err := s.cli.ContainerInspect(ctx, s.ctr.GetContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		return false, err
	}
	return res.Container.State != nil && res.Container.State.Paused, nil
}

// pause is idempotent, like SIGSTOP on the local provider.
func (s *dockerServer) pause(ctx context.Context) error {
	if p, err := s.paused(ctx); err != nil || p {
		return err
	}
	_, err := s.cli.ContainerPause(ctx, s.ctr.GetContainerID(), client.ContainerPauseOptions{})
	return err
}

// resume is idempotent, like SIGCONT on the local provider.
func (s *dockerServer) resume(ctx context.Context) error {
	if p, err := s.paused(ctx); err != nil || !p {
		return err
	}
	_, err := s.cli.ContainerUnpause(ctx, s.ctr.GetContainerID(), client.ContainerUnpauseOptions{})
	return err
}

func (s *dockerServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A paused container cannot be stopped.
	_, _ = s.cli.ContainerUnpause(ctx, s.ctr.GetContainerID(), client.ContainerUnpauseOptions{})
	err := s.ctr.Terminate(ctx)
	if cerr := s.cli.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// tcLogger sends testcontainers' progress lines to pgtest's logger, at debug level.
type tcLogger struct{ l *slog.Logger }

// Printf logs one testcontainers line.
func (t tcLogger) Printf(format string, v ...any) {
	t.l.Debug("pgtest: testcontainers: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

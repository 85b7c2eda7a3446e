package report_test

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessionsafe/sessionsafe/report"
)

// chromium finds Debian's headless browser, or skips (fails under CI=true) with the reason.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const reason = "no headless browser on PATH (install Debian's chromium: apt-get install -y chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(reason)
	}
	t.Skip(reason)
	return ""
}

// TestHTMLInBrowser loads the HTML report in headless chromium: the DOM it renders must hold
// the grid and the violations, and a screenshot must be a non-blank image showing the red
// verdict banner and green grid cells.
func TestHTMLInBrowser(t *testing.T) {
	browser := chromium(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if _, err := report.Write(sample(), report.Paths{HTML: page}); err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(dir, "profile")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + profile, "--hide-scrollbars"}

	dom, err := exec.CommandContext(ctx, browser, append(base, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, want := range []string{`data-operation="UpdateThread"`, `id="v-V2"`, `class="banner bad"`} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("rendered DOM lacks %s", want)
		}
	}

	shot := filepath.Join(dir, "report.png")
	out, err := exec.CommandContext(ctx, browser, append(base, "--screenshot="+shot, "--window-size=1200,1600", "file://"+page)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("screenshot not written: %v\n%s", err, out)
	}
	t.Cleanup(func() { f.Close() })
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if keep := os.Getenv("SESSIONSAFE_SCREENSHOT"); keep != "" {
		if data, err := os.ReadFile(shot); err == nil {
			_ = os.WriteFile(keep, data, 0o644)
		}
	}
	red, green, other := countColours(img)
	t.Logf("screenshot %v: %d red-ish, %d green-ish, %d other non-white pixels", img.Bounds().Size(), red, green, other)
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 600 {
		t.Errorf("screenshot is %v; want at least 600x600", b.Size())
	}
	if red < 500 {
		t.Errorf("screenshot shows %d red pixels; want the red verdict banner and failed cells", red)
	}
	if green < 100 {
		t.Errorf("screenshot shows %d green pixels; want the passed grid cells", green)
	}
	if other < 1000 {
		t.Errorf("screenshot is nearly blank (%d text pixels)", other)
	}
}

func countColours(img image.Image) (red, green, other int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r32, g32, b32, _ := img.At(x, y).RGBA()
			r, g, bl := int(r32>>8), int(g32>>8), int(b32>>8)
			switch {
			case r > 150 && g < 120 && bl < 120:
				red++
			case g > 180 && r < 220 && g-r > 25 && g-bl > 10:
				green++
			case r < 200 || g < 200 || bl < 200:
				other++
			}
		}
	}
	return red, green, other
}

package pgtest

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPickImage(t *testing.T) {
	tests := []struct {
		name       string
		chosen     string
		present    []string
		want       string
		wantLooked []string
	}{
		{"chosen-wins", "example/pg:17", []string{LocalImage}, "example/pg:17", []string{"example/pg:17"}},
		{"local-image-when-present", "", []string{LocalImage, DefaultImage}, LocalImage, []string{LocalImage}},
		{"official-image-otherwise", "", []string{DefaultImage}, DefaultImage, []string{LocalImage, DefaultImage}},
		{"nothing-present", "", nil, DefaultImage, []string{LocalImage, DefaultImage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, looked := pickImage(tt.chosen, func(img string) bool { return slices.Contains(tt.present, img) })
			if got != tt.want || !slices.Equal(looked, tt.wantLooked) {
				t.Errorf("pickImage(%q): got %s, looked %v; want %s, looked %v", tt.chosen, got, looked, tt.want, tt.wantLooked)
			}
		})
	}
}

// TestDefaultsLeaveTheImageToTheProvider: with SESSIONSAFE_PG_IMAGE unset, no image is fixed
// in the configuration, so the docker provider may find the image make pg-image built.
func TestDefaultsLeaveTheImageToTheProvider(t *testing.T) {
	t.Setenv(EnvImage, "")
	if got := defaults().image; got != "" {
		t.Errorf("defaults().image = %q; want \"\" (the provider chooses)", got)
	}
	t.Setenv(EnvImage, "example/pg:17")
	if got := defaults().image; got != "example/pg:17" {
		t.Errorf("defaults().image = %q; want the %s value", got, EnvImage)
	}
}

// TestMissingImageSaysHowToBuildIt: an image Docker does not have (and cannot pull) fails with
// an error naming it and make pg-image.
func TestMissingImageSaysHowToBuildIt(t *testing.T) {
	if exec.Command("docker", "info").Run() != nil {
		t.Skip("Docker not reachable")
	}
	tests := []struct {
		name string
		auto bool
	}{
		{"docker", false},
		{"auto", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults()
			cfg.image = "sessionsafe/no-such-image:missing"
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			be, err := startDocker(ctx, cfg, tt.auto)
			if err == nil {
				_ = be.close()
				t.Fatalf("startDocker(%s): no error", cfg.image)
			}
			for _, want := range []string{cfg.image, "make pg-image", LocalImage} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}
}

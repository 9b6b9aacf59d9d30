// Command healthcheck is the container health probe of the rowcast image. The
// image's base (distroless static) has no shell, curl or wget, so a compose or
// Kubernetes health check runs this instead:
//
//	/healthcheck http://127.0.0.1:9464/healthz
//
// It exits 0 when the URL answers 200 within the timeout, and 1 otherwise,
// printing why. rowcast's /healthz answers 200 only while every component of
// the process reports healthy.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := "http://127.0.0.1:9464/healthz"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if len(os.Args) > 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck [URL] (default http://127.0.0.1:9464/healthz)")
		os.Exit(2)
	}
	if err := probe(url, 4*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "unhealthy:", err)
		os.Exit(1)
	}
}

func probe(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, body)
	}
	return nil
}

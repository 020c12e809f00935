// Command kubectl-invite is the `kubectl invite` plugin: put it on your PATH and run
// `kubectl invite --help`.
package main

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/rolecall/rolecall/internal/cli"
)

// Exit statuses: 0 done, 1 failed, 2 refused by policy or admission (cli.ErrDenied).
func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	err := cli.NewRootCommand(streams).Execute()
	if err == nil {
		return
	}
	if msg := cli.Explain(err); msg != "" {
		fmt.Fprintln(os.Stderr, "error:", msg)
	}
	if errors.Is(err, cli.ErrDenied) {
		os.Exit(2)
	}
	os.Exit(1)
}

// hello-go: the example Go service. `hello-go` prints a greeting and exits (the smoke test);
// `hello-go serve ADDR` answers HTTP on ADDR with the same greeting (what the image runs).
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
)

var version = "dev"

func greeting() string {
	return fmt.Sprintf("hello from hello-go %s on %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "serve" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, greeting())
		})
		log.Printf("hello-go %s listening on %s", version, os.Args[2])
		log.Fatal(http.ListenAndServe(os.Args[2], nil))
	}
	fmt.Print(greeting())
}

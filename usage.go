package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// defaultsTable is the settings table bound to the defaults: a zero config
// with the defaults applied.
func defaultsTable() []setting {
	d := config{}.withDefaults()
	return settings(&d)
}

// shownDefault is a setting's default as the README and -h show it.
func (s setting) shownDefault() string {
	switch v := s.value.String(); {
	case s.def != "":
		return s.def
	case v == "":
		return "(none)"
	default:
		return "`" + v + "`"
	}
}

// printUsage writes the -h text: every setting, its flag, variable and
// default.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: streamrelay [flags]

streamrelay relays an OpenAI-compatible model's streamed answer to HTTP
clients as plain-text lines. Every setting is an environment variable and a
flag; a flag overrides the variable.

`)
	plain := strings.NewReplacer("`", "")
	for _, s := range defaultsTable() {
		fmt.Fprintf(w, "  -%s  (%s, default %s)\n        %s\n", s.flagName(), s.env, plain.Replace(s.shownDefault()), plain.Replace(s.usage))
	}
	fmt.Fprint(w, `  -version
        print the version and exit
  -print-config-table
        print this table in Markdown, as the README has it, and exit
`)
}

// configTable is the README's configuration table, in Markdown.
func configTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | what |\n| --- | --- | --- |\n")
	cell := strings.NewReplacer("|", `\|`, "\n", " ")
	for _, s := range defaultsTable() {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", s.env, cell.Replace(s.shownDefault()), cell.Replace(s.usage))
	}
	return b.String()
}

// version is the module's version and the VCS revision it was built from,
// as the Go toolchain recorded them.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "streamrelay: no build information"
	}
	v := "streamrelay " + info.Main.Version
	vcs := map[string]string{}
	for _, s := range info.Settings {
		vcs[s.Key] = s.Value
	}
	if rev := vcs["vcs.revision"]; rev != "" {
		v += " " + rev
		if vcs["vcs.modified"] == "true" {
			v += " (modified)"
		}
		if t := vcs["vcs.time"]; t != "" {
			v += " " + t
		}
	}
	return v + " " + info.GoVersion
}

package agent

import (
	"encoding/json"
	"slices"

	"github.com/oneshot-dev/oneshot/chat"
)

// Catalog lists every tool a run may be offered: the sandbox tools the runtime
// runs itself, and the service tools the worker runs on the host.
//
// Sandbox tools take relative paths from the workspace (/workspace) and accept
// absolute paths: the sandbox is the boundary. docs/tools.md describes each
// tool, its limits, and the settings of the service tools.
var Catalog = []ToolSpec{
	{Name: "bash", Description: "Run a bash command in /workspace and return its combined stdout and stderr (of a longer output, about the first and last 32 KiB). The command and its children are killed at the time limit. Stdin is empty; there is no network.",
		Schema: schema(`{"type":"object","properties":{"command":{"type":"string","description":"the command"},"timeoutSeconds":{"type":"integer","description":"time limit in seconds, default 120, at most 1800"}},"required":["command"]}`)},
	{Name: "read", Description: "Read a text file, whole or by lines. Output over 64 KiB is cut, with the offset to read on; lines over 4 KiB are cut. Binary files are refused.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string","description":"relative to /workspace, or absolute"},"offset":{"type":"integer","description":"first line, 1-based"},"limit":{"type":"integer","description":"number of lines"},"lineNumbers":{"type":"boolean","description":"prefix each line with its number"}},"required":["path"]}`)},
	{Name: "write", Description: "Write a file, creating folders as needed and replacing any content.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string","description":"relative to /workspace, or absolute"},"content":{"type":"string"}},"required":["path","content"]}`)},
	{Name: "edit", Description: "Replace one exact, unique occurrence of a text in a file. oldText must match the file exactly (whitespace included) and only once; add surrounding lines to make it unique.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string"},"oldText":{"type":"string","description":"the exact text to replace"},"newText":{"type":"string","description":"the replacement"}},"required":["path","oldText","newText"]}`)},
	{Name: "grep", Description: "Search the text files under a folder for a regular expression (Go RE2 syntax); returns path:line: text, at most 200 matches. Skips binary files, files over 4 MiB and .git.",
		Schema: schema(`{"type":"object","properties":{"pattern":{"type":"string","description":"regular expression"},"path":{"type":"string","description":"folder or file, default ."},"glob":{"type":"string","description":"only files whose name matches, e.g. *.go (or a path glob with **, e.g. src/**/*.go)"},"ignoreCase":{"type":"boolean"}},"required":["pattern"]}`)},
	{Name: "find", Description: "Find files and folders whose name matches a glob pattern; at most 500 results. Skips .git.",
		Schema: schema(`{"type":"object","properties":{"pattern":{"type":"string","description":"a name glob, e.g. *.go, or a path glob with **, e.g. src/**/*_test.go"},"path":{"type":"string","description":"folder to search, default ."}},"required":["pattern"]}`)},
	{Name: "ls", Description: "List a folder (folders end with /); at most 1000 entries.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string","description":"default ."}}}`)},

	{Name: "vault.list", Host: true, Description: "List the objects (documents) of the vaults attached to this run.",
		Schema: schema(`{"type":"object","properties":{"vaultId":{"type":"string","description":"only this vault; default all attached vaults"}}}`)},
	{Name: "vault.search", Host: true, Description: "Search the vaults attached to this run; returns matching passages with their objectId.",
		Schema: schema(`{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer","description":"default 10, at most 100"},"vaultId":{"type":"string","description":"only this vault; default all attached vaults"}},"required":["query"]}`)},
	{Name: "vault.read", Host: true, Description: "Read the text of a vault object of this run, 64 KiB at a time.",
		Schema: schema(`{"type":"object","properties":{"objectId":{"type":"string"},"offset":{"type":"integer","description":"byte offset to read on from, default 0"}},"required":["objectId"]}`)},
	{Name: "legal-research.search", Host: true, Description: "Search case law and legislation.",
		Schema: schema(`{"type":"object","properties":{"query":{"type":"string"},"jurisdiction":{"type":"string","description":"e.g. US, US-CA, UK, EU"},"limit":{"type":"integer","description":"default 10, at most 100"}},"required":["query"]}`)},
}

func schema(s string) json.RawMessage { return json.RawMessage(s) }

// ToolNames returns the names of all tools in the catalog.
func ToolNames() []string {
	names := make([]string, len(Catalog))
	for i, t := range Catalog {
		names[i] = t.Name
	}
	return names
}

// LookupTool returns the catalog entry of a tool.
func LookupTool(name string) (ToolSpec, bool) {
	i := slices.IndexFunc(Catalog, func(t ToolSpec) bool { return t.Name == name })
	if i < 0 {
		return ToolSpec{}, false
	}
	return Catalog[i], true
}

// OfferedTools returns the catalog tools of the given names as a model is
// offered them, under their wire names. Unknown names are skipped.
func OfferedTools(names []string) []chat.Tool {
	out := make([]chat.Tool, 0, len(names))
	for _, name := range names {
		if t, ok := LookupTool(name); ok {
			out = append(out, chat.Tool{Name: WireName(t.Name), Description: t.Description, Schema: t.Schema})
		}
	}
	return out
}

// SelectTools returns the tools a run is offered: the enabled ones if given,
// otherwise all but the disabled ones. Names must be in the catalog.
func SelectTools(enabled, disabled []string) []string {
	if len(enabled) > 0 {
		return slices.Clone(enabled)
	}
	var out []string
	for _, t := range Catalog {
		if !slices.Contains(disabled, t.Name) {
			out = append(out, t.Name)
		}
	}
	return out
}

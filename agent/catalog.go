package agent

import (
	"encoding/json"
	"slices"
)

// Catalog lists every tool a run may be offered: the sandbox tools the runtime
// runs itself, and the service tools the worker runs on the host.
var Catalog = []ToolSpec{
	{Name: "bash", Description: "Run a bash command in /workspace and return its combined output. Commands time out.",
		Schema: schema(`{"type":"object","properties":{"command":{"type":"string","description":"the command"},"timeoutSeconds":{"type":"integer","description":"time limit, default 120"}},"required":["command"]}`)},
	{Name: "read", Description: "Read a text file.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string"},"offset":{"type":"integer","description":"first line, 1-based"},"limit":{"type":"integer","description":"number of lines"}},"required":["path"]}`)},
	{Name: "write", Description: "Write a file, creating folders as needed and replacing any content.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string"},"content":{"type":"string"}},"required":["path","content"]}`)},
	{Name: "edit", Description: "Replace one exact, unique occurrence of a text in a file.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string"},"oldText":{"type":"string"},"newText":{"type":"string"}},"required":["path","oldText","newText"]}`)},
	{Name: "grep", Description: "Search files for a regular expression; returns file:line: text.",
		Schema: schema(`{"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string","description":"folder or file, default ."},"glob":{"type":"string","description":"only files whose name matches"}},"required":["pattern"]}`)},
	{Name: "find", Description: "Find files whose name matches a glob pattern.",
		Schema: schema(`{"type":"object","properties":{"pattern":{"type":"string","description":"e.g. *.go"},"path":{"type":"string"}},"required":["pattern"]}`)},
	{Name: "ls", Description: "List a folder.",
		Schema: schema(`{"type":"object","properties":{"path":{"type":"string","description":"default ."}}}`)},

	{Name: "vault.list", Host: true, Description: "List the objects of the vaults this run may see.",
		Schema: schema(`{"type":"object","properties":{"vaultId":{"type":"string"}}}`)},
	{Name: "vault.search", Host: true, Description: "Search the vaults this run may see.",
		Schema: schema(`{"type":"object","properties":{"query":{"type":"string"},"limit":{"type":"integer"}},"required":["query"]}`)},
	{Name: "vault.read", Host: true, Description: "Read the text of a vault object.",
		Schema: schema(`{"type":"object","properties":{"objectId":{"type":"string"}},"required":["objectId"]}`)},
	{Name: "legal-research.search", Host: true, Description: "Search case law and legislation.",
		Schema: schema(`{"type":"object","properties":{"query":{"type":"string"},"jurisdiction":{"type":"string"},"limit":{"type":"integer"}},"required":["query"]}`)},
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

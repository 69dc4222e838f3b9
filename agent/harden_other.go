//go:build !linux

package agent

func hardenProcess() {}

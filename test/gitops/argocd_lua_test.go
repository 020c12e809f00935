package gitops_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// The argocd-cm keys under which Argo CD looks for rolecall's health checks.
const (
	invitationHealthKey      = "resource.customizations.health.invites.rolecall.dev_Invitation"
	roleGrantPolicyHealthKey = "resource.customizations.health.invites.rolecall.dev_RoleGrantPolicy"
)

// health is what an Argo CD health check returns for an object.
type health struct {
	Status  string
	Message string
}

// argoStatuses are the statuses Argo CD accepts from a health check; it shows any other
// as Unknown with "Lua returned an invalid health status", which would hide a typo.
var argoStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// healthScripts renders config/argocd, the argocd-cm that users install, and returns its
// data: the scripts are tested exactly as Argo CD reads them.
func healthScripts(ctx context.Context) map[string]string {
	out, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join(repoRoot, "config", "argocd")).Output() //nolint:gosec // the control plane's own kubectl
	Expect(err).NotTo(HaveOccurred())
	cm := &corev1.ConfigMap{}
	Expect(yaml.UnmarshalStrict(out, cm)).To(Succeed())
	Expect(cm.Name).To(Equal("argocd-cm"))
	Expect(cm.Labels).To(HaveKeyWithValue("app.kubernetes.io/part-of", "argocd"), "Argo CD reads only the argocd-cm it labels as its own")
	return cm.Data
}

// runHealthScript evaluates a health check on an object the way Argo CD runs a custom
// check from argocd-cm: the object as the global `obj`, only the package, base and table
// libraries open (custom checks get no string, math or io library), a one-second budget,
// and the returned table's status validated.
func runHealthScript(script string, obj map[string]any) (health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return health{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return health{}, err
	}
	return healthFrom(l.Get(-1))
}

func healthFrom(value lua.LValue) (health, error) {
	table, ok := value.(*lua.LTable)
	if !ok {
		return health{}, fmt.Errorf("the script returned a %s, not a table", value.Type())
	}
	status, ok := table.RawGetString("status").(lua.LString)
	if !ok || !argoStatuses[string(status)] {
		return health{}, fmt.Errorf("the script returned the invalid status %v", table.RawGetString("status"))
	}
	message, ok := table.RawGetString("message").(lua.LString)
	if !ok {
		return health{}, errors.New("the script returned no message")
	}
	return health{Status: string(status), Message: string(message)}, nil
}

// toLua converts an unstructured object into Lua values as Argo CD does: maps become
// tables with string keys, lists become tables indexed from 1, and values of other types
// become nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case []any:
		list := l.CreateTable(len(v), 0)
		for _, item := range v {
			list.Append(toLua(l, item))
		}
		return list
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

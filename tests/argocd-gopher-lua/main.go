// Command argocd-gopher-lua runs one Argo CD Lua script on one object with
// gopher-lua, the interpreter Argo CD embeds, set up as Argo CD's
// util/lua/lua.go sets it up for scripts from argocd-cm: no standard
// libraries except package, base, table and a safe os; the object as the
// global `obj`; the returned table encoded with gopher-json, and an action's
// result cleaned of empty tables that stood for maps.
//
// Usage: argocd-gopher-lua SCRIPT.lua OBJECT.json  (prints the result as JSON)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-gopher-lua SCRIPT.lua OBJECT.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	check(err)
	raw, err := os.ReadFile(os.Args[2])
	check(err)
	var obj map[string]interface{}
	check(json.Unmarshal(raw, &obj))

	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		check(l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	check(l.DoString(string(script)))
	result := l.Get(-1)
	if result.Type() != lua.LTTable {
		check(fmt.Errorf("expect table output from Lua script, not %s", result.Type()))
	}
	out, err := luajson.Encode(result)
	check(err)
	var decoded interface{}
	check(json.Unmarshal(out, &decoded))
	if m, ok := decoded.(map[string]interface{}); ok && m["metadata"] != nil {
		decoded = cleanReturnedObj(m, obj)
	}
	final, err := json.Marshal(decoded)
	check(err)
	fmt.Println(string(final))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// openSafeOs is Argo CD's os subset: time and date only.
func openSafeOs(l *lua.LState) int {
	mod := l.RegisterModule(lua.OsLibName, map[string]lua.LGFunction{
		"time": func(l *lua.LState) int { l.Push(lua.LNumber(time.Now().Unix())); return 1 },
		"date": func(l *lua.LState) int { l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339))); return 1 },
	})
	l.Push(mod)
	return 1
}

// decodeValue turns JSON values into Lua values as Argo CD does.
func decodeValue(l *lua.LState, value interface{}) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case []interface{}:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// cleanReturnedObj restores maps that came back as empty arrays (an empty
// Lua table encodes as []), as Argo CD does before it patches.
func cleanReturnedObj(newObj, obj map[string]interface{}) map[string]interface{} {
	for key, oldValue := range obj {
		newValue, ok := newObj[key]
		if !ok {
			continue
		}
		switch nv := newValue.(type) {
		case map[string]interface{}:
			if ov, ok := oldValue.(map[string]interface{}); ok {
				newObj[key] = cleanReturnedObj(nv, ov)
			}
		case []interface{}:
			switch ov := oldValue.(type) {
			case map[string]interface{}:
				if len(nv) == 0 {
					newObj[key] = ov
				}
			case []interface{}:
				for i := range nv {
					if i < len(ov) {
						if nm, ok := nv[i].(map[string]interface{}); ok {
							if om, ok := ov[i].(map[string]interface{}); ok {
								nv[i] = cleanReturnedObj(nm, om)
							}
						}
					}
				}
			}
		}
	}
	return newObj
}

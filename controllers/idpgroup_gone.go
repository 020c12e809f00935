package controllers

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/delivery"
)

// A sealed binding with an idpGroup keeps a finalizer so that its membership is removed
// before it goes. Whoever may patch bindings can strip that finalizer and delete the binding
// at once; the membership must end all the same. The controller therefore remembers, from
// the delete event, every sealed idpGroup binding that disappeared without it having
// removed the membership, and removes the membership then.

// gone holds the memberships of sealed bindings deleted without the controller's "remove".
type gone struct {
	mu sync.Mutex
	// owed is keyed by the binding's name: what its Reconcile must still remove.
	owed map[types.NamespacedName]gonebinding
	// left are the UIDs of bindings whose membership this controller already removed.
	left map[types.UID]bool
}

type gonebinding struct {
	owner      bindings.Owner
	membership delivery.Membership
}

// markLeft notes that the membership of the binding with this UID was removed.
func (g *gone) markLeft(uid types.UID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left == nil {
		g.left = map[types.UID]bool{}
	}
	g.left[uid] = true
}

// remember records a deleted binding's membership unless it was removed already.
func (g *gone) remember(binding client.Object, owner bindings.Owner, m delivery.Membership) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left[binding.GetUID()] {
		delete(g.left, binding.GetUID())
		return false
	}
	if g.owed == nil {
		g.owed = map[types.NamespacedName]gonebinding{}
	}
	g.owed[client.ObjectKeyFromObject(binding)] = gonebinding{owner: owner, membership: m}
	return true
}

// take returns, and forgets, what is owed for a binding's name.
func (g *gone) take(key types.NamespacedName) (gonebinding, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	owed, ok := g.owed[key]
	delete(g.owed, key)
	return owed, ok
}

// rememberDeleted is the delete-event handler: a sealed idpGroup binding that vanished
// while still owing its "remove" (its finalizer stripped) is queued for it.
func (r *IDPGroupReconciler) rememberDeleted(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	owner, m, ok := r.sealedMembership(e.Object)
	if !ok {
		return
	}
	if r.gone.remember(e.Object, owner, m) {
		q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)})
	}
}

// removeGone sends the "remove" a binding that is gone still owes, if any.
func (r *IDPGroupReconciler) removeGone(ctx context.Context, key types.NamespacedName) error {
	owed, ok := r.gone.take(key)
	if !ok || r.Hook == nil {
		return nil
	}
	if err := r.removeMembership(ctx, owed.owner, owed.membership); err != nil {
		r.gone.mu.Lock()
		r.gone.owed[key] = owed
		r.gone.mu.Unlock()
		return err
	}
	return nil
}

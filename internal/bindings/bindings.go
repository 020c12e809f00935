// Package bindings makes the RoleBindings and ClusterRoleBindings an invitation promises, one
// per (invitation, user, grant), with names that make re-redeeming idempotent.
package bindings

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/seal"
)

const purposeBinding = "rolecall/binding/v1"

// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings;clusterrolebindings,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;clusterroles,verbs=bind

// Made names one binding that holds a grant.
type Made struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	RoleRef   string `json:"roleRef"`
}

// UserHash is the label value that identifies a user on bindings.
func UserHash(username string) string {
	sum := sha256.Sum256([]byte(username))
	return hex.EncodeToString(sum[:16])
}

// name is the same for the same invitation, user and grant, every time.
func name(inv *invitesv1alpha1.Invitation, username string, grant int) string {
	sum := sha256.Sum256([]byte(string(inv.UID) + "\x00" + username + "\x00" + strconv.Itoa(grant)))
	return "rolecall-" + hex.EncodeToString(sum[:10])
}

// Holds says whether the user holds every binding of the invitation, as rolecall made them.
// Bindings have deterministic names, so this is a read by name per grant, which a cache can
// answer. Some but not all means a redemption is still being made, or failed and is being
// undone, or an administrator removed a grant: not held. A binding with that name that
// rolecall did not seal, or that no longer binds the role to the user, is not held either.
func Holds(ctx context.Context, c client.Reader, sealer *seal.Sealer, inv *invitesv1alpha1.Invitation, username string) (bool, error) {
	for i, g := range inv.Spec.Grants {
		want, _ := desired(inv, username, i, g)
		have := want.DeepCopyObject().(client.Object)
		err := c.Get(ctx, client.ObjectKeyFromObject(want), have)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if !have.GetDeletionTimestamp().IsZero() || !sameGrant(want, have) || !Sealed(sealer, have) {
			return false, nil
		}
	}
	return true, nil
}

// Remove deletes the user's bindings from this invitation, for a redemption that could
// not make all of them: a use that is given back leaves no grant behind. A binding of that
// name that rolecall did not seal is someone else's and stays.
func Remove(ctx context.Context, c client.Client, sealer *seal.Sealer, inv *invitesv1alpha1.Invitation, username string) error {
	for i, g := range inv.Spec.Grants {
		obj, _ := desired(inv, username, i, g)
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("grants[%d]: %w", i, err)
		}
		if !Sealed(sealer, obj) {
			continue
		}
		uid := obj.GetUID()
		if err := c.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("grants[%d]: %w", i, err)
		}
	}
	return nil
}

// ExpiresAt is when grants made at redeemedAt end, or nil when they do not.
func ExpiresAt(inv *invitesv1alpha1.Invitation, redeemedAt time.Time) *time.Time {
	if inv.Spec.GrantDuration == nil {
		return nil
	}
	at := redeemedAt.Add(inv.Spec.GrantDuration.Duration).UTC().Truncate(time.Second)
	return &at
}

// Describe lists the bindings that hold the invitation's grants for the user, without
// touching the cluster.
func Describe(inv *invitesv1alpha1.Invitation, username string) []Made {
	made := make([]Made, 0, len(inv.Spec.Grants))
	for i, g := range inv.Spec.Grants {
		_, m := desired(inv, username, i, g)
		made = append(made, m)
	}
	return made
}

// Ensure makes every grant's binding for the user's use claimed at claimedAt, sealed,
// leaving those that exist, and returns them all. When the invitation has a grantDuration,
// the end is recorded on each binding for the expiry controller. Only a fresh, checked
// claim may lead here: Ensure is how grants come about.
func Ensure(ctx context.Context, c client.Client, sealer *seal.Sealer, inv *invitesv1alpha1.Invitation, username string, claimedAt time.Time) ([]Made, error) {
	made := make([]Made, 0, len(inv.Spec.Grants))
	expiresAt := ExpiresAt(inv, claimedAt)
	for i, g := range inv.Spec.Grants {
		obj, m := desired(inv, username, i, g)
		obj.GetAnnotations()[invitesv1alpha1.ClaimedAtAnnotation] = claimedAt.UTC().Format(time.RFC3339)
		if expiresAt != nil {
			obj.GetAnnotations()[invitesv1alpha1.ExpiresAtAnnotation] = expiresAt.Format(time.RFC3339)
		}
		obj.GetAnnotations()[invitesv1alpha1.SealAnnotation] = sealer.Sum(purposeBinding, bindingFields(obj)...)
		if err := createOrConfirm(ctx, c, sealer, obj); err != nil {
			return made, fmt.Errorf("grants[%d]: %w", i, err)
		}
		made = append(made, m)
	}
	return made, nil
}

func desired(inv *invitesv1alpha1.Invitation, username string, i int, g invitesv1alpha1.Grant) (client.Object, Made) {
	meta := metav1.ObjectMeta{
		Name: name(inv, username, i),
		Labels: map[string]string{
			invitesv1alpha1.InvitationUIDLabel: string(inv.UID), invitesv1alpha1.UserLabel: UserHash(username),
			invitesv1alpha1.ManagedByLabel: invitesv1alpha1.ManagedByValue,
		},
		Annotations: map[string]string{
			invitesv1alpha1.UsernameAnnotation:   username,
			invitesv1alpha1.InvitationAnnotation: inv.Namespace + "/" + inv.Name,
		},
	}
	if g.IDPGroup != "" {
		// Set at creation, never added later: a binding deleted a moment after it was made
		// still owes its "remove".
		meta.Annotations[invitesv1alpha1.IDPGroupAnnotation] = g.IDPGroup
		meta.Finalizers = []string{invitesv1alpha1.IDPGroupFinalizer}
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: username}}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: g.RoleKind(), Name: g.RoleName()}
	if g.ClusterWide {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: meta, Subjects: subjects, RoleRef: roleRef},
			Made{Kind: "ClusterRoleBinding", Name: meta.Name, RoleRef: roleRef.Kind + "/" + roleRef.Name}
	}
	meta.Namespace = g.LandsIn(inv.Namespace)
	return &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subjects, RoleRef: roleRef},
		Made{Kind: "RoleBinding", Name: meta.Name, Namespace: meta.Namespace, RoleRef: roleRef.Kind + "/" + roleRef.Name}
}

// createOrConfirm creates the binding, or confirms that the one already there is rolecall's
// and the same.
func createOrConfirm(ctx context.Context, c client.Client, sealer *seal.Sealer, want client.Object) error {
	err := c.Create(ctx, want)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	have := want.DeepCopyObject().(client.Object)
	err = c.Get(ctx, client.ObjectKeyFromObject(want), have)
	if apierrors.IsNotFound(err) {
		// Deleted between our create and our read: someone is removing this grant.
		return fmt.Errorf("%w: %s was deleted while it was being made", ErrConflict, want.GetName())
	}
	if err != nil {
		return err
	}
	if !sameGrant(want, have) || !Sealed(sealer, have) {
		return fmt.Errorf("%w: %s exists and was not made by rolecall for this grant", ErrConflict, have.GetName())
	}
	return nil
}

// ErrConflict means a binding with the name rolecall would give a grant exists and is not
// rolecall's (someone else made it: rolecall neither adopts nor overwrites it), or was
// deleted while rolecall made it.
var ErrConflict = errors.New("binding conflict")

// Sealed says rolecall made the binding: its seal verifies over what it grants, to whom,
// for which invitation, until when and with which idpGroup. Controllers act only on sealed
// bindings, and take every fact they act on from what the seal covers.
func Sealed(sealer *seal.Sealer, binding client.Object) bool {
	return sealer.Verify(binding.GetAnnotations()[invitesv1alpha1.SealAnnotation], purposeBinding, bindingFields(binding)...)
}

// bindingFields are what a binding's seal covers. Subjects are not among them: rolecall
// empties them while an idpGroup membership is being removed; the username annotation
// says whom the grant is for, and Holds checks that the subjects still name them.
func bindingFields(binding client.Object) []string {
	var roleRef rbacv1.RoleRef
	kind := "ClusterRoleBinding"
	switch b := binding.(type) {
	case *rbacv1.RoleBinding:
		kind, roleRef = "RoleBinding", b.RoleRef
	case *rbacv1.ClusterRoleBinding:
		roleRef = b.RoleRef
	default:
		return nil
	}
	a := binding.GetAnnotations()
	return []string{
		kind, binding.GetNamespace(), binding.GetName(), roleRef.Kind, roleRef.Name,
		binding.GetLabels()[invitesv1alpha1.InvitationUIDLabel], a[invitesv1alpha1.UsernameAnnotation], a[invitesv1alpha1.InvitationAnnotation],
		a[invitesv1alpha1.IDPGroupAnnotation], a[invitesv1alpha1.ExpiresAtAnnotation], a[invitesv1alpha1.ClaimedAtAnnotation],
	}
}

// bindWindow bounds how long after its claim a redemption's binding can have been created:
// the redemption server gives up binding after 15 seconds, and the manager's and the API
// server's clocks may differ by some seconds.
const bindWindow = 30 * time.Second

// MadeByItsRedemption says a sealed binding is the very one its redemption created, not a
// copy someone recreated later from its labels, annotations and seal: the API server sets
// creationTimestamp, and a redemption creates its bindings right after its claim.
func MadeByItsRedemption(binding client.Object) bool {
	claimedAt, err := time.Parse(time.RFC3339, binding.GetAnnotations()[invitesv1alpha1.ClaimedAtAnnotation])
	if err != nil {
		return false
	}
	created := binding.GetCreationTimestamp().Time
	return !created.Before(claimedAt.Add(-bindWindow)) && !created.After(claimedAt.Add(bindWindow))
}

// EndsAt is when the binding's grant ends, if it has an end. ok is false for a grant without
// one; err is set when the annotation does not parse (someone edited it).
func EndsAt(binding client.Object) (end time.Time, ok bool, err error) {
	raw, ok := binding.GetAnnotations()[invitesv1alpha1.ExpiresAtAnnotation]
	if !ok {
		return time.Time{}, false, nil
	}
	end, err = time.Parse(time.RFC3339, raw)
	return end, true, err
}

// Expired says the binding's grant end has passed (or cannot be read).
func Expired(binding client.Object, now time.Time) bool {
	end, ok, err := EndsAt(binding)
	return ok && (err != nil || !now.Before(end))
}

// Owner is what a sealed binding says about where it came from.
type Owner struct {
	// Invitation is the namespace and name of the invitation that made the binding.
	Invitation types.NamespacedName
	// UID is that invitation's UID: an invitation of the same name made later is another.
	UID types.UID
	// Username is whom the grant is for.
	Username string
}

// OwnerOf reads where a binding came from. It is only to be trusted for a binding that is
// Sealed.
func OwnerOf(binding client.Object) (Owner, bool) {
	ns, name, ok := strings.Cut(binding.GetAnnotations()[invitesv1alpha1.InvitationAnnotation], "/")
	if !ok || ns == "" || name == "" {
		return Owner{}, false
	}
	return Owner{
		Invitation: types.NamespacedName{Namespace: ns, Name: name},
		UID:        types.UID(binding.GetLabels()[invitesv1alpha1.InvitationUIDLabel]),
		Username:   binding.GetAnnotations()[invitesv1alpha1.UsernameAnnotation],
	}, true
}

func sameGrant(want, have client.Object) bool {
	switch w := want.(type) {
	case *rbacv1.RoleBinding:
		h := have.(*rbacv1.RoleBinding)
		return w.RoleRef == h.RoleRef && equality.Semantic.DeepEqual(w.Subjects, h.Subjects)
	case *rbacv1.ClusterRoleBinding:
		h := have.(*rbacv1.ClusterRoleBinding)
		return w.RoleRef == h.RoleRef && equality.Semantic.DeepEqual(w.Subjects, h.Subjects)
	}
	return false
}

// ReplaceOthers removes the user's bindings from other rolecall invitations in the scope of
// this one (the namespaces its grants land in, and the cluster if it grants cluster-wide):
// what `upgrade: Replace` promises. It returns how many it removed.
func ReplaceOthers(ctx context.Context, c client.Client, sealer *seal.Sealer, inv *invitesv1alpha1.Invitation, username string) (int, error) {
	removed := 0
	for _, scope := range scopes(inv) {
		n, err := deleteListed(ctx, c, c, scope.list, func(binding client.Object) bool {
			return binding.GetLabels()[invitesv1alpha1.InvitationUIDLabel] != string(inv.UID) && Sealed(sealer, binding) &&
				binding.GetAnnotations()[invitesv1alpha1.UsernameAnnotation] == username
		}, scope.namespace, client.MatchingLabels{invitesv1alpha1.UserLabel: UserHash(username), invitesv1alpha1.ManagedByLabel: invitesv1alpha1.ManagedByValue})
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// scope is one place an invitation grants in: a namespace's RoleBindings, or the
// cluster's ClusterRoleBindings.
type scope struct {
	list      client.ObjectList
	namespace client.InNamespace
}

func scopes(inv *invitesv1alpha1.Invitation) []scope {
	var out []scope
	seen := map[string]bool{}
	for _, g := range inv.Spec.Grants {
		key := g.LandsIn(inv.Namespace)
		s := scope{list: &rbacv1.RoleBindingList{}, namespace: client.InNamespace(key)}
		if key == "" {
			s = scope{list: &rbacv1.ClusterRoleBindingList{}}
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, s)
		}
	}
	return out
}

// RemoveAll deletes every binding the invitation made, for every user: what revokeGrants
// promises. It lists through reader (the manager's cache holds only rolecall's bindings)
// and deletes through writer. It returns how many it deleted.
func RemoveAll(ctx context.Context, reader client.Reader, writer client.Client, sealer *seal.Sealer, inv *invitesv1alpha1.Invitation) (int, error) {
	removed := 0
	for _, list := range []client.ObjectList{&rbacv1.RoleBindingList{}, &rbacv1.ClusterRoleBindingList{}} {
		n, err := deleteListed(ctx, reader, writer, list, func(binding client.Object) bool {
			return binding.GetDeletionTimestamp().IsZero() && Sealed(sealer, binding)
		}, client.MatchingLabels{invitesv1alpha1.InvitationUIDLabel: string(inv.UID)})
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// deleteListed lists bindings through reader and deletes, through writer, those that
// selected says to. It returns how many it deleted.
func deleteListed(ctx context.Context, reader client.Reader, writer client.Client, list client.ObjectList,
	selected func(client.Object) bool, opts ...client.ListOption) (int, error) {
	if err := reader.List(ctx, list, opts...); err != nil {
		return 0, err
	}
	removed := 0
	err := meta.EachListItem(list, func(obj runtime.Object) error {
		binding := obj.(client.Object)
		if !selected(binding) {
			return nil
		}
		if err := writer.Delete(ctx, binding); client.IgnoreNotFound(err) != nil {
			return err
		}
		removed++
		return nil
	})
	return removed, err
}

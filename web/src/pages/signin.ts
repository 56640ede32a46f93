// Sign-in. Local mode: pick a simulator tenant and user (the local host mints the token).
// Entra mode: a button that starts MSAL's redirect sign-in.

import { type Auth, LocalAuth, localDirectory, type SignedInUser } from "../auth";
import { busy, button, field, h, notice, replace } from "../dom";
import { errorText, pageHeading } from "../ui";

const KIND_NOTE: Record<string, string> = {
  onPremises: " (on-premises mailbox)",
  unlicensed: " (no licence)",
  outsideScope: " (outside the app's scope)",
  hybrid: " (hybrid: on-premises mailbox, free/busy only)",
};

export async function renderSignIn(auth: Auth, main: HTMLElement, done: (user: SignedInUser) => void, note?: string): Promise<void> {
  const message = h("div", null, note ? notice("warning", note) : null);
  if (auth.mode === "entra") {
    const signIn = button("Sign in with Microsoft", () => void (auth as Auth & { signIn(): Promise<void> }).signIn(), { class: "primary" });
    replace(main, pageHeading("Sign in"), message, h("section", { class: "card" }, h("p", null, "Sign in with your work account to schedule sessions or set up the integration."), signIn));
    return;
  }
  const local = auth as LocalAuth;
  let directory;
  try {
    directory = await localDirectory();
  } catch (e) {
    replace(main, pageHeading("Sign in"), notice("error", errorText(e)));
    return;
  }
  const tenant = h("select", { id: "tenant", name: "tenant" }, directory.map((t) => h("option", { value: t.id }, t.domain)));
  const user = h("select", { id: "user", name: "user" });
  const admin = h("input", { type: "checkbox", id: "admin", name: "admin" });
  const fill = () => {
    const t = directory.find((x) => x.id === tenant.value) ?? directory[0];
    replace(
      user,
      (t?.users ?? []).map((u) =>
        h("option", { value: u.userPrincipalName, selected: u.userPrincipalName.startsWith("admin@") }, `${u.userPrincipalName}${KIND_NOTE[u.kind] ?? ""}`),
      ),
    );
    admin.checked = user.value.startsWith("admin@");
  };
  tenant.addEventListener("change", fill);
  user.addEventListener("change", () => {
    admin.checked = user.value.startsWith("admin@");
  });
  fill();
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card" },
    h(
      "fieldset",
      null,
      h("legend", null, "Local sign-in (Microsoft 365 simulator)"),
      h("p", { class: "hint" }, "Pick a person of a simulated organisation. Deployed, people sign in with Microsoft instead."),
      field("Organisation", tenant),
      field("Person", user),
      h("div", { class: "choice" }, admin, h("label", { for: "admin" }, "Sign in as an integration admin (Integration.Admin role)")),
    ),
    message,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void busy(submit, async () => {
      try {
        done(await local.signIn(user.value, admin.checked));
      } catch (e) {
        replace(message, notice("error", errorText(e)));
      }
    });
  });
  replace(main, pageHeading("Sign in"), form);
}

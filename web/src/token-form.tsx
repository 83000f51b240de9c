import { useId, useState, type FormEvent } from "react";

/** The JWT field (token-input / token-save): kept in sessionStorage for this tab. */
export function TokenForm(props: { onSave: (token: string) => void; prominent: boolean; status: string }) {
  const [value, setValue] = useState("");
  const id = useId();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const token = value.trim();
    if (token === "") return;
    props.onSave(token);
    setValue("");
  };
  return (
    <form className={props.prominent ? "token token-prominent" : "token"} onSubmit={submit} aria-label="Sign in with a token">
      <p className="token-status" role={props.prominent ? "alert" : undefined}>
        {props.status}
      </p>
      <label htmlFor={id}>Access token (JWT)</label>
      <div className="row">
        <input
          id={id}
          data-testid="token-input"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={value}
          onChange={(event) => setValue(event.target.value)}
          placeholder="eyJhbGciOi…"
        />
        <button type="submit" data-testid="token-save">
          Use token
        </button>
      </div>
    </form>
  );
}

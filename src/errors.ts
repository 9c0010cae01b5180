// Every failure the CLI reports carries its exit code (DESIGN.md): 1 runtime,
// 2 usage or invalid input, 3 configuration conflict.

export interface ErrorDetail {
  /** Where the problem is: `file:line`, an option name, a sysfs path. */
  where?: string;
  /** What the admin should do about it. */
  hint?: string;
}

export abstract class ApPersistError extends Error {
  abstract readonly exitCode: number;
  readonly where: string | undefined;
  readonly hint: string | undefined;

  constructor(message: string, detail: ErrorDetail = {}) {
    super(message);
    this.where = detail.where;
    this.hint = detail.hint;
  }

  /** One or two lines for stderr: `where: what`, then what to do. */
  describe(): string {
    const head = this.where ? `${this.where}: ${this.message}` : this.message;
    return this.hint ? `${head}\n  ${this.hint}` : head;
  }
}

/** Bad syntax, a broken store, an unknown UUID: exit 2, nothing changed. */
export class InputError extends ApPersistError {
  readonly exitCode = 2;
}

/** A sysfs write refused, an external command failed, I/O: exit 1. */
export class RuntimeError extends ApPersistError {
  readonly exitCode = 1;
}

/** A configuration conflict; the report is printed by the caller: exit 3. */
export class ConflictError extends ApPersistError {
  readonly exitCode = 3;
}

/** Re-throws `err` as an InputError placed at `where` when it has no place yet. */
export function placeError(err: unknown, where: string): never {
  if (err instanceof InputError && !err.where) {
    throw new InputError(err.message, { where, hint: err.hint });
  }
  throw err;
}

/** Any error as one message and an exit code: ours as they are, an I/O error (errno) as a runtime failure with its path. */
export function describeFailure(err: unknown): { message: string; exitCode: number } {
  if (err instanceof ApPersistError) return { message: err.describe(), exitCode: err.exitCode };
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && e.syscall) {
    return { message: `${e.path ?? e.syscall}: ${e.code} (${e.message})`, exitCode: 1 };
  }
  return { message: String(e?.stack ?? err), exitCode: 1 };
}

// What a Next.js frontend does with this API, written against the types openapi-typescript
// generates from /openapi.json (src/schema.d.ts) and called through openapi-fetch.
// `tsc --noEmit` proves the document types every call; `node dist/smoke.js BASE_URL` proves the
// server answers as typed. Any unexpected status or body exits non-zero.
//
// Usage: node dist/smoke.js http://127.0.0.1:8000

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Task = components["schemas"]["TaskRead"];
type Token = components["schemas"]["TokenResponse"];
type ErrorBody = components["schemas"]["ErrorResponse"];
type ValidationErrors = components["schemas"]["HTTPValidationError"];

const baseUrl = process.argv[2] ?? "http://127.0.0.1:8000";
let step = "start";

function check(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(message);
  }
}

function expectStatus(response: Response, expected: number): void {
  check(response.status === expected, `expected ${expected}, got ${response.status}`);
}

async function main(): Promise<void> {
  const anonymous = createClient<paths>({ baseUrl });

  step = "sign up";
  const email = `ts-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const signup = await anonymous.POST("/api/auth/signup", {
    body: { email, password: "correct horse battery", name: "Ada" },
  });
  expectStatus(signup.response, 201);
  check(signup.data !== undefined, "no body");
  const account: Token = signup.data;
  check(account.token_type === "bearer", `token_type ${account.token_type}`);
  check(account.email === email && account.user.email === email, "email not echoed");
  const userId = account.user_id;
  const path = { user_id: userId };

  const api = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${account.access_token}` },
  });

  step = "me";
  const me = await api.GET("/api/auth/me");
  expectStatus(me.response, 200);
  check(me.data?.id === userId, "me is someone else");

  step = "create";
  const created = await api.POST("/api/{user_id}/tasks", {
    params: { path },
    body: {
      title: "  Buy milk  ",
      description: "2 litres",
      priority: "high",
      tags: ["Shopping", "home"],
      due_at: "2030-01-31T09:00:00+01:00",
      recurrence: "none",
    },
  });
  expectStatus(created.response, 201);
  check(created.data !== undefined, "no body");
  const task: Task = created.data;
  check(task.title === "Buy milk", `title ${JSON.stringify(task.title)}`);
  check(task.tags.join() === "shopping,home", `tags ${task.tags.join()}`);
  check(task.due_at === "2030-01-31T08:00:00Z", `due_at ${task.due_at}`);
  check(!task.completed && task.completed_at === null, "created completed");

  step = "list";
  const listed = await api.GET("/api/{user_id}/tasks", {
    params: { path, query: { status: "pending", tag: ["shopping"], sort: "due_at", limit: 10 } },
  });
  expectStatus(listed.response, 200);
  check(listed.response.headers.get("X-Total-Count") === "1", "X-Total-Count is not 1");
  const tasks: Task[] = listed.data ?? [];
  check(tasks.length === 1 && tasks[0]?.id === task.id, `listed ${tasks.map((t) => t.id)}`);

  step = "toggle";
  const toggled = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
    params: { path: { ...path, task_id: task.id } },
  });
  expectStatus(toggled.response, 200);
  check(toggled.data?.completed === true, "not completed");
  check(typeof toggled.data.completed_at === "string", "no completed_at");

  step = "stats";
  const stats = await api.GET("/api/{user_id}/tasks/stats", { params: { path } });
  expectStatus(stats.response, 200);
  check(stats.data?.completed === 1 && stats.data.pending === 0, JSON.stringify(stats.data));

  step = "invalid body";
  const invalid = await api.POST("/api/{user_id}/tasks", {
    params: { path },
    body: { title: "   " },
  });
  expectStatus(invalid.response, 422);
  // The error type is the union of every documented error body; its shape tells them apart.
  const problems = invalid.error;
  check(problems !== undefined && Array.isArray(problems.detail), JSON.stringify(problems));
  const errors: ValidationErrors["detail"] = problems.detail;
  check(errors?.[0]?.loc.includes("title") === true, JSON.stringify(errors));

  step = "delete";
  const deleted = await api.DELETE("/api/{user_id}/tasks/{task_id}", {
    params: { path: { ...path, task_id: task.id } },
  });
  expectStatus(deleted.response, 204);

  step = "deleted task is 404";
  const missing = await api.GET("/api/{user_id}/tasks/{task_id}", {
    params: { path: { ...path, task_id: task.id } },
  });
  expectStatus(missing.response, 404);
  const notFound = missing.error;
  check(notFound !== undefined && typeof notFound.detail === "string", JSON.stringify(notFound));
  const message: ErrorBody["detail"] = notFound.detail;
  check(message === "Task not found", message);

  step = "another user's tasks are 403";
  const foreign = await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: "x" } } });
  expectStatus(foreign.response, 403);

  step = "list is empty";
  const empty = await api.GET("/api/{user_id}/tasks", { params: { path } });
  expectStatus(empty.response, 200);
  check(empty.data?.length === 0, `still ${empty.data?.length} tasks`);

  console.log(`typescript client: ok (${baseUrl}, user ${userId})`);
}

// Compile-time only: the generated types refuse what the API refuses.
export function refusedByTheTypes(api: ReturnType<typeof createClient<paths>>): void {
  void api.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: "u" } },
    // @ts-expect-error: "urgent" is not a priority
    body: { title: "x", priority: "urgent" },
  });
  void api.PUT("/api/{user_id}/tasks/{task_id}", {
    params: { path: { user_id: "u", task_id: 1 } },
    // @ts-expect-error: an update cannot set the title to null
    body: { title: null },
  });
  // @ts-expect-error: task routes need the user id in the path
  void api.GET("/api/{user_id}/tasks", {});
}

main().catch((error: unknown) => {
  const reason = error instanceof Error ? error.message : String(error);
  console.error(`typescript client: FAILED at "${step}": ${reason}`);
  process.exit(1);
});

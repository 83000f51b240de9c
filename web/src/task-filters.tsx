import { useId } from "react";
import { PRIORITY_NAMES } from "./task-form";
import { ORDERS, PRIORITIES, STATUSES, type Order, type Priority, type Status, type TaskView } from "./task-view";

const STATUS_NAMES: Record<Status, string> = { ALL: "All", PENDING: "Pending", COMPLETED: "Completed" };
const ORDER_NAMES: Record<Order, string> = { DUE_AT: "Due date", PRIORITY: "Priority", CREATED_AT: "Newest", UPDATED_AT: "Recently changed" };
const PRIORITY_CHOICES: [Priority | "", string][] = [["", "Any"], ...PRIORITIES.map((p): [Priority, string] => [p, PRIORITY_NAMES[p]])];
const ORDER_CHOICES: [Order, string][] = ORDERS.map((order) => [order, ORDER_NAMES[order]]);

type Change = (change: Partial<TaskView>) => void;

/** Search, the filters and the order of the task list; every change lands in the URL (task-view.ts). */
export function TaskFilters({ view, onChange }: { view: TaskView; onChange: Change }) {
  const id = useId();
  return (
    <div className="task-filters">
      <div className="field">
        <label htmlFor={`${id}-search`}>Search tasks</label>
        <input
          id={`${id}-search`}
          type="search"
          data-testid="task-search"
          value={view.search}
          maxLength={200}
          placeholder="dentist"
          onChange={(event) => onChange({ search: event.target.value })}
        />
      </div>
      <div className="filters" role="group" aria-label="Show">
        {STATUSES.map((status) => (
          <button key={status} type="button" aria-pressed={view.status === status} onClick={() => onChange({ status })}>
            {STATUS_NAMES[status]}
          </button>
        ))}
      </div>
      <div className="filter-row">
        <Choice
          label="Priority"
          testId="filter-priority"
          value={view.priority}
          choices={PRIORITY_CHOICES}
          onChange={(priority) => onChange({ priority })}
        />
        <div className="field">
          <label htmlFor={`${id}-label`}>Label</label>
          <input
            id={`${id}-label`}
            data-testid="filter-label"
            value={view.label}
            maxLength={40}
            onChange={(event) => onChange({ label: event.target.value })}
          />
        </div>
        <Choice label="Sort by" testId="task-order" value={view.order} choices={ORDER_CHOICES} onChange={(order) => onChange({ order })} />
      </div>
      <label className="check">
        <input
          type="checkbox"
          data-testid="filter-overdue"
          checked={view.overdue}
          onChange={(event) => onChange({ overdue: event.target.checked })}
        />
        Overdue only
      </label>
    </div>
  );
}

interface ChoiceProps<T extends string> {
  label: string;
  testId: string;
  value: T;
  choices: [T, string][];
  onChange: (value: T) => void;
}

function Choice<T extends string>({ label, testId, value, choices, onChange }: ChoiceProps<T>) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select
        id={id}
        data-testid={testId}
        value={value}
        onChange={(event) => onChange(choices.find(([choice]) => choice === event.target.value)?.[0] ?? value)}
      >
        {choices.map(([choice, name]) => (
          <option key={choice} value={choice}>
            {name}
          </option>
        ))}
      </select>
    </div>
  );
}

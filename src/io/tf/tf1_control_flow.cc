#include "io/tf/tf1_control_flow.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <vector>

namespace kiln {
namespace {

std::string Q(const std::string& s) { return "'" + s + "'"; }

struct Ref {
  std::string node;
  int index = 0;
  bool control = false;
};

bool ParseRef(const std::string& s, Ref* r) {
  if (s.empty()) return false;
  if (s[0] == '^') {
    r->control = true;
    r->node = s.substr(1);
    r->index = 0;
    return !r->node.empty();
  }
  r->control = false;
  const size_t colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size() && s.size() - colon - 1 <= 6 &&
      s.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    r->node = s.substr(0, colon);
    r->index = std::stoi(s.substr(colon + 1));
  } else {
    r->node = s;
    r->index = 0;
  }
  return !r->node.empty();
}

bool IsOp(const tfpb::NodeDef& n, const char* op) {
  return n.op() == op || n.op() == std::string("Ref") + op;
}
bool IsFrameOp(const tfpb::NodeDef& n) {
  return IsOp(n, "Enter") || IsOp(n, "Exit") || IsOp(n, "NextIteration") || n.op() == "LoopCond";
}
bool IsControlFlowOp(const tfpb::NodeDef& n) {
  return IsFrameOp(n) || IsOp(n, "Merge") || IsOp(n, "Switch");
}

std::string Describe(const tfpb::NodeDef& n) { return "node " + Q(n.name()) + " (" + n.op() + ")"; }

tfpb::DataType TypeAttr(const tfpb::NodeDef& n, const char* a) {
  auto it = n.attr().find(a);
  return it == n.attr().end() || it->second.value_case() != tfpb::AttrValue::kType
             ? tfpb::DT_INVALID
             : it->second.type();
}

constexpr const char* kUnknown = "\x01";

class Lowering {
 public:
  Lowering(tfpb::GraphDef gd, std::string where) : gd_(std::move(gd)), where_(std::move(where)) {}

  Status Run() {
    // tf.cond first (innermost first): a cond inside a loop body becomes an If node of the
    // frame, a loop inside a branch moves into the branch function.
    int switches = 0;
    for (const auto& n : gd_.node()) switches += IsOp(n, "Switch") ? 1 : 0;
    for (int pass = 0;; ++pass) {
      if (pass > switches) return Err("tf.cond branches could not be lowered");
      KILN_RETURN_IF_ERROR(AnalyzeConds());
      std::string group;
      int depth = -1;
      for (const auto& g : groups_) {
        const int d = static_cast<int>(std::count(g.begin(), g.end(), '|'));
        if (d > depth) {
          depth = d;
          group = g;
        }
      }
      if (group.empty()) break;
      KILN_RETURN_IF_ERROR(LowerCond(group));
    }
    // Each pass lowers one innermost frame; a graph has at most as many frames as Enters.
    int enters = 0;
    for (const auto& n : gd_.node()) enters += IsOp(n, "Enter") ? 1 : 0;
    for (int pass = 0; pass <= enters; ++pass) {
      KILN_RETURN_IF_ERROR(Analyze());
      std::set<std::string> frames, parents;
      for (const auto& f : frame_) {
        if (f != kUnknown && !f.empty()) frames.insert(f);
      }
      if (frames.empty()) return CheckNoStrays();
      for (const auto& f : frames) parents.insert(parent_[f]);
      std::string inner;
      for (const auto& f : frames) {
        if (!parents.count(f)) {
          inner = f;
          break;
        }
      }
      if (inner.empty()) return Err("while frames nest in a cycle");
      KILN_RETURN_IF_ERROR(Lower(inner));
    }
    return Err("while frames could not be lowered");
  }

  tfpb::GraphDef& graph() { return gd_; }

 private:
  Status Err(const std::string& m) const { return InvalidArgument(where_ + ": " + m); }

  // Inputs, consumers and floating (constant-only) nodes of gd_.
  Status BuildEdges() {
    const int n = gd_.node_size();
    index_.clear();
    for (int i = 0; i < n; ++i) index_[gd_.node(i).name()] = i;
    inputs_.assign(n, {});
    consumers_.assign(n, {});
    for (int i = 0; i < n; ++i) {
      for (const auto& s : gd_.node(i).input()) {
        Ref r;
        if (!ParseRef(s, &r)) {
          return Err(Describe(gd_.node(i)) + " has a malformed input " + Q(s));
        }
        auto it = index_.find(r.node);
        if (it == index_.end()) {
          return Err(Describe(gd_.node(i)) + " reads " + Q(r.node) +
                     ", which is not a node of the graph");
        }
        inputs_[i].push_back({it->second, r});
        consumers_[it->second].push_back(i);
      }
    }
    // Floating: Consts and nodes computed only from them (no control-flow op among them).
    floating_.assign(n, false);
    std::vector<int> pending(n, 0);
    std::deque<int> work;
    for (int i = 0; i < n; ++i) {
      pending[i] = static_cast<int>(inputs_[i].size());
      if (gd_.node(i).op() == "Const" && pending[i] == 0) {
        floating_[i] = true;
        work.push_back(i);
      }
    }
    while (!work.empty()) {
      int i = work.front();
      work.pop_front();
      for (int c : consumers_[i]) {
        if (--pending[c] == 0 && !IsControlFlowOp(gd_.node(c)) && !inputs_[c].empty()) {
          bool all = std::all_of(inputs_[c].begin(), inputs_[c].end(),
                                 [&](const auto& in) { return floating_[in.first]; });
          if (all && !floating_[c]) {
            floating_[c] = true;
            work.push_back(c);
          }
        }
      }
    }
    return Status::OK();
  }

  // Frame ids ("" = the root; "<parent>/<frame_name>").
  Status Analyze() {
    KILN_RETURN_IF_ERROR(BuildEdges());
    const int n = gd_.node_size();
    std::deque<int> work;
    frame_.assign(n, kUnknown);
    parent_.clear();
    for (int i = 0; i < n; ++i) {
      if (floating_[i]) continue;
      bool seed = std::all_of(inputs_[i].begin(), inputs_[i].end(),
                              [&](const auto& in) { return floating_[in.first]; });
      if (!seed) continue;
      KILN_RETURN_IF_ERROR(Assign(i, ""));
      work.push_back(i);
    }
    while (!work.empty()) {
      int i = work.front();
      work.pop_front();
      for (int c : consumers_[i]) {
        if (floating_[c] || frame_[c] != kUnknown) continue;
        KILN_RETURN_IF_ERROR(Assign(c, frame_[i]));
        work.push_back(c);
      }
    }
    // Every data edge must stay in its frame (Enter enters, Exit leaves).
    for (int c = 0; c < n; ++c) {
      if (floating_[c] || frame_[c] == kUnknown) continue;
      const auto& def = gd_.node(c);
      for (const auto& [i, ref] : inputs_[c]) {
        if (floating_[i] || frame_[i] == kUnknown || ref.control) continue;
        std::string want = frame_[c];
        if (IsOp(def, "Enter")) want = parent_[frame_[c]];
        if (IsOp(def, "Exit")) continue;  // checked in Assign
        if (frame_[i] != want) {
          return Err(Describe(def) + " reads " + Q(gd_.node(i).name()) + ", which is " +
                     FrameName(frame_[i]) + ", from " + FrameName(want) +
                     " (values cross frames only through Enter and Exit)");
        }
      }
    }
    return Status::OK();
  }

  std::string FrameName(const std::string& f) const {
    if (f.empty()) return "outside any while frame";
    auto it = frame_names_.find(f);
    return "in while frame " + Q(it == frame_names_.end() ? f : it->second);
  }

  // Frame of node c given the frame `from` of one of its inputs.
  Status Assign(int c, const std::string& from) {
    const auto& def = gd_.node(c);
    if (IsOp(def, "Enter")) {
      auto it = def.attr().find("frame_name");
      std::string name = it == def.attr().end() ? std::string() : it->second.s();
      if (name.empty()) return Err(Describe(def) + " has no 'frame_name'");
      std::string f = from + "/" + name;
      parent_[f] = from;
      frame_names_[f] = name;
      frame_[c] = f;
    } else if (IsOp(def, "Exit")) {
      if (from.empty()) return Err(Describe(def) + " is outside any while frame");
      frame_[c] = parent_[from];
    } else if (from.empty() && (IsOp(def, "NextIteration") || def.op() == "LoopCond")) {
      return Err(Describe(def) + " is outside any while frame");
    } else {
      frame_[c] = from;
    }
    return Status::OK();
  }

  // After lowering: no frame op may be left (e.g. a NextIteration on a cycle without Enter).
  Status CheckNoStrays() const {
    for (int i = 0; i < gd_.node_size(); ++i) {
      const auto& def = gd_.node(i);
      if (IsFrameOp(def)) {
        return Err(Describe(def) + " is not part of a well-formed while frame (no Enter "
                   "reaches it)");
      }
    }
    return Status::OK();
  }

  Status Lower(const std::string& frame);

  // ---- tf.cond: Switch(data, pred) -> branch nodes -> Merge ----
  bool IsCondSwitch(int i) const {
    if (!IsOp(gd_.node(i), "Switch") || inputs_[i].size() < 2) return false;
    return gd_.node(inputs_[i][1].first).op() != "LoopCond";
  }
  bool IsCondMerge(int i) const {
    if (!IsOp(gd_.node(i), "Merge")) return false;
    for (const auto& [j, ref] : inputs_[i]) {
      if (!ref.control && (IsOp(gd_.node(j), "Enter") || IsOp(gd_.node(j), "NextIteration"))) {
        return false;
      }
    }
    return true;
  }
  std::string PredKey(int sw) const {
    const Ref& r = inputs_[sw][1].second;
    return r.node + ":" + std::to_string(r.index);
  }
  // The branch context a value read over edge (i, ref) belongs to.
  std::string EdgeCtx(int i, const Ref& ref) const {
    if (IsCondSwitch(i) && !ref.control) {
      return ctx_[i] + "|" + PredKey(i) + "#" + std::to_string(ref.index);
    }
    return ctx_[i];
  }
  static std::string ParentCtx(const std::string& c) {
    const size_t bar = c.rfind('|');
    return bar == std::string::npos ? std::string() : c.substr(0, bar);
  }
  Status AnalyzeConds();
  Status LowerCond(const std::string& group);

  std::vector<std::string> ctx_;  // per node: "" or "<ctx>|<pred>#<side>"
  std::set<std::string> groups_;  // "<ctx>|<pred>" of every cond switch
  int conds_lowered_ = 0;

  tfpb::GraphDef gd_;
  std::string where_;
  std::map<std::string, int> index_;
  std::vector<std::vector<std::pair<int, Ref>>> inputs_;
  std::vector<std::vector<int>> consumers_;
  std::vector<bool> floating_;
  std::vector<std::string> frame_;
  std::map<std::string, std::string> parent_;
  std::map<std::string, std::string> frame_names_;  // frame id -> its frame_name
  int lowered_ = 0;
};

Status Lowering::Lower(const std::string& frame) {
  const int n = gd_.node_size();
  const std::string fname = Q(frame_names_[frame]);
  std::vector<int> members, loop_conds, merges, enters, nexts, switches;
  for (int i = 0; i < n; ++i) {
    if (frame_[i] != frame) continue;
    members.push_back(i);
    const auto& d = gd_.node(i);
    if (d.op() == "LoopCond") loop_conds.push_back(i);
    if (IsOp(d, "Merge")) merges.push_back(i);
    if (IsOp(d, "Enter")) enters.push_back(i);
    if (IsOp(d, "NextIteration")) nexts.push_back(i);
    if (IsOp(d, "Switch")) switches.push_back(i);
  }
  // Loop variables: Merge(Enter, NextIteration).
  struct Var {
    int merge = -1, enter = -1, next = -1, sw = -1;
  };
  std::vector<Var> vars;
  std::map<int, int> var_of_merge, var_of_switch;
  std::set<int> used_nexts, var_enters;
  for (int m : merges) {
    Var v;
    v.merge = m;
    for (const auto& [i, ref] : inputs_[m]) {
      if (ref.control) continue;
      if (IsOp(gd_.node(i), "Enter") && v.enter < 0) {
        v.enter = i;
      } else if (IsOp(gd_.node(i), "NextIteration") && v.next < 0) {
        v.next = i;
      } else {
        return Err(Describe(gd_.node(m)) + " in while frame " + fname + " reads " +
                   Q(gd_.node(i).name()) + "; a loop Merge reads one Enter and one "
                   "NextIteration");
      }
    }
    if (v.enter < 0 || v.next < 0) {
      return Err(Describe(gd_.node(m)) + " in while frame " + fname +
                 " needs an Enter and a NextIteration input");
    }
    if (!used_nexts.insert(v.next).second) {
      return Err(Describe(gd_.node(v.next)) + " feeds more than one Merge");
    }
    var_enters.insert(v.enter);
    var_of_merge[m] = static_cast<int>(vars.size());
    vars.push_back(v);
  }
  for (int x : nexts) {
    if (!used_nexts.count(x)) {
      return Err(Describe(gd_.node(x)) + " has no matching Merge in while frame " + fname);
    }
  }
  if (loop_conds.size() != 1) {
    return Err("while frame " + fname + " has " + std::to_string(loop_conds.size()) +
               " LoopCond nodes, expected 1");
  }
  const int loop_cond = loop_conds[0];
  for (int s : switches) {
    int data = -1, pred = -1;
    for (const auto& [i, ref] : inputs_[s]) {
      if (ref.control) continue;
      (data < 0 ? data : pred) = i;
    }
    if (data < 0 || pred != loop_cond || !var_of_merge.count(data)) {
      return Err(Describe(gd_.node(s)) + " in while frame " + fname +
                 " must switch a loop Merge on the frame's LoopCond " +
                 Q(gd_.node(loop_cond).name()));
    }
    vars[var_of_merge[data]].sw = s;
    var_of_switch[s] = var_of_merge[data];
  }
  // Loop invariants: the other Enters. TensorArray handles (DT_RESOURCE) are not carried.
  std::vector<int> invariants;
  std::set<int> handles;
  for (int e : enters) {
    if (var_enters.count(e)) continue;
    if (TypeAttr(gd_.node(e), "T") == tfpb::DT_RESOURCE) {
      handles.insert(e);
    } else {
      invariants.push_back(e);
    }
  }
  // A loop variable's type: the Enter's T, or for a TensorArray flow the array's element type
  // (a TensorArray is a sequence carried by its flow value).
  auto var_type = [&](int enter) -> tfpb::DataType {
    for (int depth = 0, cur = enter; depth < 64; ++depth) {
      const auto& d = gd_.node(cur);
      if (d.op() == "TensorArrayV3") return TypeAttr(d, "dtype");
      if (d.op() == "TensorArrayScatterV3" || d.op() == "TensorArrayWriteV3") return TypeAttr(d, "T");
      if (!(IsOp(d, "Enter") || d.op() == "Identity" || IsOp(d, "Exit")) || inputs_[cur].empty()) {
        break;
      }
      cur = inputs_[cur][0].first;
    }
    return TypeAttr(gd_.node(enter), "T");
  };

  // The functions' nodes: what LoopCond and the NextIterations need, inside the frame.
  const std::string loop_name = gd_.node(loop_cond).name();
  auto arg_of = [&](int i, const Ref& ref, std::string* out) -> Status {
    const auto& d = gd_.node(i);
    if (var_of_merge.count(i)) {
      if (ref.index != 0) return Err(Describe(d) + ": its value_index output is not supported");
      *out = "v" + std::to_string(var_of_merge[i]);
    } else if (var_of_switch.count(i)) {
      if (ref.index != 1) {
        return Err("a node of while frame " + fname + " reads the exit side (output 0) of " +
                   Describe(d));
      }
      *out = "v" + std::to_string(var_of_switch[i]);
    } else if (handles.count(i)) {
      *out = "kiln_tensor_array_handle:0";
    } else if (auto it = std::find(invariants.begin(), invariants.end(), i);
               it != invariants.end()) {
      *out = "c" + std::to_string(it - invariants.begin());
    } else if (i == loop_cond) {
      return Err("a node of while frame " + fname + " reads the LoopCond " + Q(d.name()) +
                 " (not supported)");
    } else if (IsOp(d, "NextIteration") || IsOp(d, "Enter")) {
      return Err("a node of while frame " + fname + " reads " + Describe(d));
    } else {
      *out = d.name() + ":" + std::to_string(ref.index);
    }
    return Status::OK();
  };
  auto is_body_node = [&](int i) {
    const auto& d = gd_.node(i);
    return !var_of_merge.count(i) && !var_of_switch.count(i) && !handles.count(i) &&
           !IsOp(d, "Enter") && !IsOp(d, "NextIteration") && i != loop_cond;
  };
  // Data closure from `roots` (node indices), within the frame or floating.
  auto closure = [&](const std::vector<int>& roots) {
    std::set<int> seen;
    std::vector<int> stack;
    for (int r : roots) {
      if (is_body_node(r)) stack.push_back(r);
    }
    while (!stack.empty()) {
      int i = stack.back();
      stack.pop_back();
      if (!seen.insert(i).second) continue;
      for (const auto& [j, ref] : inputs_[i]) {
        if (ref.control) continue;
        if ((frame_[j] == frame || floating_[j]) && is_body_node(j)) stack.push_back(j);
      }
    }
    return seen;
  };
  tfpb::FunctionDefLibrary* lib = gd_.mutable_library();
  const std::string base = "__kiln_while_" + std::to_string(lowered_++) + "_";
  std::set<std::string> fnames;
  for (const auto& f : lib->function()) fnames.insert(f.signature().name());
  std::string fbase = base;
  for (int k = 0; fnames.count(fbase + "cond") || fnames.count(fbase + "body"); ++k) {
    fbase = base + std::to_string(k) + "_";
  }
  std::vector<tfpb::DataType> arg_types;
  for (const auto& v : vars) arg_types.push_back(var_type(v.enter));
  for (int c : invariants) arg_types.push_back(TypeAttr(gd_.node(c), "T"));
  for (size_t k = 0; k < arg_types.size(); ++k) {
    if (arg_types[k] == tfpb::DT_INVALID) {
      int e = k < vars.size() ? vars[k].enter : invariants[k - vars.size()];
      return Err(Describe(gd_.node(e)) + " has no type attribute 'T'");
    }
  }
  auto make_function = [&](const std::string& name, const std::vector<int>& roots,
                           tfpb::FunctionDef** out) -> Status {
    tfpb::FunctionDef* f = lib->add_function();
    f->mutable_signature()->set_name(name);
    for (size_t k = 0; k < arg_types.size(); ++k) {
      auto* a = f->mutable_signature()->add_input_arg();
      a->set_name(k < vars.size() ? "v" + std::to_string(k)
                                  : "c" + std::to_string(k - vars.size()));
      a->set_type(arg_types[k]);
    }
    std::set<int> nodes = closure(roots);
    if (!handles.empty()) {
      tfpb::NodeDef* h = f->add_node_def();
      h->set_name("kiln_tensor_array_handle");
      h->set_op("Const");
      (*h->mutable_attr())["dtype"].set_type(tfpb::DT_INT32);
      auto* t = (*h->mutable_attr())["value"].mutable_tensor();
      t->set_dtype(tfpb::DT_INT32);
      t->mutable_tensor_shape();
      t->add_int_val(0);
    }
    for (int i : nodes) {
      tfpb::NodeDef d = gd_.node(i);
      d.clear_input();
      for (const auto& [j, ref] : inputs_[i]) {
        if (ref.control) {
          if (nodes.count(j)) d.add_input("^" + gd_.node(j).name());
          continue;
        }
        std::string a;
        KILN_RETURN_IF_ERROR(arg_of(j, ref, &a));
        d.add_input(a);
      }
      *f->add_node_def() = std::move(d);
    }
    *out = f;
    return Status::OK();
  };
  // cond
  tfpb::FunctionDef* cond_fn = nullptr;
  const auto& lc_in = inputs_[loop_cond];
  int pred_node = -1;
  Ref pred_ref;
  for (const auto& [j, ref] : lc_in) {
    if (!ref.control) {
      pred_node = j;
      pred_ref = ref;
      break;
    }
  }
  if (pred_node < 0) return Err(Describe(gd_.node(loop_cond)) + " has no data input");
  KILN_RETURN_IF_ERROR(make_function(fbase + "cond", {pred_node}, &cond_fn));
  {
    std::string ret;
    KILN_RETURN_IF_ERROR(arg_of(pred_node, pred_ref, &ret));
    auto* o = cond_fn->mutable_signature()->add_output_arg();
    o->set_name("cond");
    o->set_type(tfpb::DT_BOOL);
    (*cond_fn->mutable_ret())["cond"] = ret;
  }
  // body
  std::vector<int> body_roots;
  std::vector<std::pair<int, Ref>> next_in;
  for (const auto& v : vars) {
    const auto& in = inputs_[v.next];
    auto it = std::find_if(in.begin(), in.end(), [](const auto& p) { return !p.second.control; });
    if (it == in.end()) return Err(Describe(gd_.node(v.next)) + " has no data input");
    next_in.push_back(*it);
    body_roots.push_back(it->first);
  }
  tfpb::FunctionDef* body_fn = nullptr;
  KILN_RETURN_IF_ERROR(make_function(fbase + "body", body_roots, &body_fn));
  for (size_t k = 0; k < arg_types.size(); ++k) {
    auto* o = body_fn->mutable_signature()->add_output_arg();
    o->set_name("r" + std::to_string(k));
    o->set_type(arg_types[k]);
    std::string ret;
    if (k < vars.size()) {
      KILN_RETURN_IF_ERROR(arg_of(next_in[k].first, next_in[k].second, &ret));
    } else {
      ret = "c" + std::to_string(k - vars.size());
    }
    (*body_fn->mutable_ret())[o->name()] = ret;
  }
  // A frame node nothing in the loop uses and nothing reads is a value that never leaves the
  // frame (a would-be graph output): TF1 gives it no value outside the loop either.
  {
    std::set<int> used = closure({pred_node});
    for (int i : closure(body_roots)) used.insert(i);
    for (int i : members) {
      const auto& d = gd_.node(i);
      const bool inner_exit = d.op() == "Identity" && inputs_[i].size() == 1 &&
                              gd_.node(inputs_[i][0].first).op() == "While";
      if (used.count(i) || !is_body_node(i) || !consumers_[i].empty() || inner_exit ||
          d.op() == "NoOp" ||
          d.op() == "Assert" || d.op() == "Print" || d.op() == "PrintV2" ||
          d.op() == "TensorArrayCloseV3") {
        continue;
      }
      return Err(Describe(d) + " is inside while frame " + fname +
                 " but neither the loop nor an Exit uses it (a value leaves a frame only "
                 "through Exit)");
    }
  }
  // Enter inputs (outside the frame): the While's inputs.
  auto enter_input = [&](int e) -> StatusOr<std::string> {
    for (const auto& s : gd_.node(e).input()) {
      if (!s.empty() && s[0] != '^') return s;
    }
    return Err(Describe(gd_.node(e)) + " has no data input");
  };
  tfpb::NodeDef loop;
  loop.set_name(loop_name);
  loop.set_op("While");
  auto* tl = (*loop.mutable_attr())["T"].mutable_list();
  for (auto t : arg_types) tl->add_type(t);
  (*loop.mutable_attr())["cond"].mutable_func()->set_name(fbase + "cond");
  (*loop.mutable_attr())["body"].mutable_func()->set_name(fbase + "body");
  (*loop.mutable_attr())["_kiln_tf1_frame"].set_s(frame_names_[frame]);
  for (const auto& v : vars) {
    KILN_ASSIGN_OR_RETURN(std::string s, enter_input(v.enter));
    loop.add_input(s);
  }
  for (int c : invariants) {
    KILN_ASSIGN_OR_RETURN(std::string s, enter_input(c));
    loop.add_input(s);
  }
  // Outside readers: only Exits (of a Switch of this frame) may read the frame.
  std::set<int> member_set(members.begin(), members.end());
  std::map<int, int> exit_var;
  for (int i = 0; i < n; ++i) {
    if (member_set.count(i)) continue;
    const auto& d = gd_.node(i);
    for (const auto& [j, ref] : inputs_[i]) {
      if (!member_set.count(j) || ref.control) continue;
      if (IsOp(d, "Exit") && var_of_switch.count(j) && ref.index == 0) {
        exit_var[i] = var_of_switch[j];
      } else {
        return Err(Describe(d) + " reads " + Q(gd_.node(j).name()) + " of while frame " + fname +
                   " other than through an Exit of the loop's Switch");
      }
    }
  }
  tfpb::GraphDef out;
  *out.mutable_versions() = gd_.versions();
  *out.mutable_library() = gd_.library();
  for (int i = 0; i < n; ++i) {
    if (member_set.count(i)) continue;
    tfpb::NodeDef d = gd_.node(i);
    if (exit_var.count(i)) {
      tfpb::NodeDef id;
      id.set_name(d.name());
      id.set_op("Identity");
      id.add_input(loop_name + ":" + std::to_string(exit_var[i]));
      if (TypeAttr(d, "T") != tfpb::DT_INVALID) (*id.mutable_attr())["T"].set_type(TypeAttr(d, "T"));
      d = std::move(id);
    } else {
      // Control inputs on frame nodes now wait for the whole loop.
      auto* ins = d.mutable_input();
      for (int k = ins->size() - 1; k >= 0; --k) {
        Ref r;
        if (ParseRef(ins->Get(k), &r) && r.control && index_.count(r.node) &&
            member_set.count(index_[r.node])) {
          ins->Mutable(k)->assign("^" + loop_name);
        }
      }
    }
    *out.add_node() = std::move(d);
  }
  *out.add_node() = std::move(loop);
  gd_ = std::move(out);
  return Status::OK();
}

Status Lowering::AnalyzeConds() {
  KILN_RETURN_IF_ERROR(BuildEdges());
  const int n = gd_.node_size();
  ctx_.assign(n, "");
  groups_.clear();
  std::deque<int> work;
  std::vector<bool> queued(n, true);
  for (int i = 0; i < n; ++i) work.push_back(i);
  int64_t budget = 64LL * (n + 1) + 1024;
  while (!work.empty()) {
    if (--budget < 0) return Err("tf.cond contexts do not settle (a Switch without Merge on a cycle?)");
    const int c = work.front();
    work.pop_front();
    queued[c] = false;
    std::string best;
    for (const auto& [i, ref] : inputs_[c]) {
      if (IsCondSwitch(c) && &ref != &inputs_[c][0].second && !ref.control) continue;  // pred
      std::string e = EdgeCtx(i, ref);
      if (e.size() > best.size()) best = std::move(e);
    }
    if (IsCondMerge(c)) best = ParentCtx(best);
    if (std::count(best.begin(), best.end(), '|') > 64) {
      return Err(Describe(gd_.node(c)) + ": tf.cond branches nested more than 64 deep");
    }
    if (best == ctx_[c]) continue;
    ctx_[c] = best;
    for (int k : consumers_[c]) {
      if (!queued[k]) {
        queued[k] = true;
        work.push_back(k);
      }
    }
  }
  for (int i = 0; i < n; ++i) {
    if (IsCondSwitch(i)) groups_.insert(ctx_[i] + "|" + PredKey(i));
  }
  return Status::OK();
}

Status Lowering::LowerCond(const std::string& group) {
  const int n = gd_.node_size();
  const std::string parent = ParentCtx(group);
  const std::string side_ctx[2] = {group + "#0", group + "#1"};
  std::vector<int> switches, merges;
  std::set<int> removed;
  for (int i = 0; i < n; ++i) {
    if (IsCondSwitch(i) && ctx_[i] + "|" + PredKey(i) == group) {
      switches.push_back(i);
      removed.insert(i);
    }
    if (ctx_[i] == side_ctx[0] || ctx_[i] == side_ctx[1]) removed.insert(i);
  }
  if (switches.empty()) return Err("tf.cond group " + Q(group) + " has no Switch");
  const tfpb::NodeDef& first = gd_.node(switches[0]);
  const std::string what = "the tf.cond on " + Q(PredKey(switches[0]));
  // Merges of this cond: one input from each side.
  std::vector<std::pair<int, Ref>> rets[2];
  for (int m = 0; m < n; ++m) {
    if (!IsCondMerge(m) || ctx_[m] != parent) continue;
    std::pair<int, Ref> in[2];
    int got[2] = {0, 0}, other = 0;
    for (const auto& [j, ref] : inputs_[m]) {
      if (ref.control) continue;
      const std::string e = EdgeCtx(j, ref);
      if (e == side_ctx[0] || e == side_ctx[1]) {
        const int b = e == side_ctx[1] ? 1 : 0;
        in[b] = {j, ref};
        ++got[b];
      } else {
        ++other;
      }
    }
    if (got[0] + got[1] == 0) continue;  // a Merge of another cond
    if (got[0] != 1 || got[1] != 1 || other != 0) {
      return Err(Describe(gd_.node(m)) + " merges " + std::to_string(got[0] + got[1] + other) +
                 " values; a tf.cond Merge takes one from each branch of " + what);
    }
    for (int c : consumers_[m]) {
      for (const auto& [j, ref] : inputs_[c]) {
        if (j == m && !ref.control && ref.index != 0) {
          return Err(Describe(gd_.node(c)) + " reads the value_index output of " +
                     Describe(gd_.node(m)) + " (not supported)");
        }
      }
    }
    merges.push_back(m);
    removed.insert(m);
    for (int b = 0; b < 2; ++b) rets[b].push_back(in[b]);
  }
  // Branch closures and the values they read from outside (extra If inputs).
  std::map<int, int> arg_of_switch;
  for (size_t k = 0; k < switches.size(); ++k) arg_of_switch[switches[k]] = static_cast<int>(k);
  std::vector<std::string> extra;  // outer refs "node:K"
  std::map<std::string, int> extra_index;
  std::set<int> nodes[2];
  auto in_side = [&](int j, int b) { return ctx_[j] == side_ctx[b] && !arg_of_switch.count(j); };
  for (int b = 0; b < 2; ++b) {
    std::vector<int> stack;
    for (const auto& [j, ref] : rets[b]) {
      if (in_side(j, b) || floating_[j]) stack.push_back(j);
    }
    while (!stack.empty()) {
      const int i = stack.back();
      stack.pop_back();
      if (!nodes[b].insert(i).second) continue;
      for (const auto& [j, ref] : inputs_[i]) {
        if (ref.control) continue;
        if (in_side(j, b) || (floating_[j] && !arg_of_switch.count(j))) stack.push_back(j);
      }
    }
  }
  // Maps a read inside branch b to the function's name for it.
  auto map_ref = [&](int j, const Ref& ref, int b, std::string* out) -> Status {
    if (arg_of_switch.count(j)) {
      if (ref.index != b) {
        return Err("a node of the " + std::string(b ? "true" : "false") + " branch of " + what +
                   " reads the other branch's output of " + Describe(gd_.node(j)));
      }
      *out = "a" + std::to_string(arg_of_switch[j]);
    } else if (nodes[b].count(j)) {
      *out = gd_.node(j).name() + ":" + std::to_string(ref.index);
    } else if (removed.count(j)) {
      return Err("a node of " + what + " reads " + Describe(gd_.node(j)) + " of the other branch");
    } else {
      const std::string r = gd_.node(j).name() + ":" + std::to_string(ref.index);
      auto [it, inserted] = extra_index.emplace(r, static_cast<int>(extra.size()));
      if (inserted) extra.push_back(r);
      *out = "x" + std::to_string(it->second);
    }
    return Status::OK();
  };
  // A branch node no Merge needs and nothing reads would be a value that never leaves the
  // branch (a would-be graph output): an error, except side-effect ops and the pivots.
  for (int i : removed) {
    const auto& d = gd_.node(i);
    if (arg_of_switch.count(i) || nodes[0].count(i) || nodes[1].count(i) ||
        !consumers_[i].empty() || d.op() == "NoOp" || d.op() == "Assert" ||
        d.op() == "Print" || d.op() == "PrintV2" ||
        std::find(merges.begin(), merges.end(), i) != merges.end()) {
      continue;
    }
    if (d.op() == "Identity" && inputs_[i].size() == 1 && arg_of_switch.count(inputs_[i][0].first)) {
      continue;  // the pivot (switch_t / switch_f)
    }
    return Err(Describe(d) + " is inside a branch of " + what +
               " but no Merge uses it (a value leaves a branch only through Merge)");
  }
  // Function bodies (inputs mapped) and returns, per branch.
  tfpb::FunctionDef fns[2];
  for (int b = 0; b < 2; ++b) {
    for (int i : nodes[b]) {
      tfpb::NodeDef d = gd_.node(i);
      d.clear_input();
      for (const auto& [j, ref] : inputs_[i]) {
        if (ref.control) {
          if (nodes[b].count(j)) d.add_input("^" + gd_.node(j).name());
          continue;
        }
        std::string a;
        KILN_RETURN_IF_ERROR(map_ref(j, ref, b, &a));
        d.add_input(a);
      }
      *fns[b].add_node_def() = std::move(d);
    }
    for (size_t k = 0; k < rets[b].size(); ++k) {
      std::string r;
      KILN_RETURN_IF_ERROR(map_ref(rets[b][k].first, rets[b][k].second, b, &r));
      auto* o = fns[b].mutable_signature()->add_output_arg();
      o->set_name("r" + std::to_string(k));
      o->set_type(TypeAttr(gd_.node(merges[k]), "T"));
      (*fns[b].mutable_ret())[o->name()] = r;
    }
  }
  // Outside readers of the branches: only the Merges.
  for (int i = 0; i < n; ++i) {
    if (removed.count(i)) continue;
    for (const auto& [j, ref] : inputs_[i]) {
      if (ref.control || !removed.count(j) ||
          std::find(merges.begin(), merges.end(), j) != merges.end()) {
        continue;
      }
      return Err(Describe(gd_.node(i)) + " reads " + Q(gd_.node(j).name()) + " of " + what +
                 " other than through a Merge");
    }
  }
  std::set<std::string> fnames;
  for (const auto& f : gd_.library().function()) fnames.insert(f.signature().name());
  std::string base;
  do {
    base = "__kiln_cond_" + std::to_string(conds_lowered_++) + "_";
  } while (fnames.count(base + "then") || fnames.count(base + "else"));
  const std::string if_name = first.name();  // the Switch goes; its name names the If
  tfpb::NodeDef node;
  node.set_name(if_name);
  node.set_op("If");
  node.add_input(PredKey(switches[0]));
  for (int sw : switches) {
    const Ref& r = inputs_[sw][0].second;
    node.add_input(r.node + ":" + std::to_string(r.index));
  }
  for (const auto& e : extra) node.add_input(e);
  auto* tout = (*node.mutable_attr())["Tout"].mutable_list();
  for (int m : merges) tout->add_type(TypeAttr(gd_.node(m), "T"));
  (*node.mutable_attr())["then_branch"].mutable_func()->set_name(base + "then");
  (*node.mutable_attr())["else_branch"].mutable_func()->set_name(base + "else");
  (*node.mutable_attr())["_kiln_tf1_cond"].set_b(true);
  for (int b = 0; b < 2; ++b) {
    auto* sig = fns[b].mutable_signature();
    sig->set_name(base + (b ? "then" : "else"));
    for (size_t k = 0; k < switches.size(); ++k) {
      auto* a = sig->add_input_arg();
      a->set_name("a" + std::to_string(k));
      a->set_type(TypeAttr(gd_.node(switches[k]), "T"));
    }
    for (size_t k = 0; k < extra.size(); ++k) sig->add_input_arg()->set_name("x" + std::to_string(k));
  }
  tfpb::GraphDef out;
  *out.mutable_versions() = gd_.versions();
  *out.mutable_library() = gd_.library();
  *out.mutable_library()->add_function() = std::move(fns[1]);
  *out.mutable_library()->add_function() = std::move(fns[0]);
  std::map<int, int> merge_out;
  for (size_t k = 0; k < merges.size(); ++k) merge_out[merges[k]] = static_cast<int>(k);
  for (int i = 0; i < n; ++i) {
    if (merge_out.count(i)) {
      tfpb::NodeDef id;
      id.set_name(gd_.node(i).name());
      id.set_op("Identity");
      id.add_input(if_name + ":" + std::to_string(merge_out[i]));
      (*id.mutable_attr())["T"].set_type(TypeAttr(gd_.node(i), "T"));
      *out.add_node() = std::move(id);
      continue;
    }
    if (removed.count(i)) continue;
    tfpb::NodeDef d = gd_.node(i);
    auto* ins = d.mutable_input();
    for (int k = ins->size() - 1; k >= 0; --k) {
      Ref r;
      if (ParseRef(ins->Get(k), &r) && r.control && index_.count(r.node) &&
          removed.count(index_[r.node])) {
        ins->Mutable(k)->assign("^" + if_name);
      }
    }
    *out.add_node() = std::move(d);
  }
  if (!merges.empty()) *out.add_node() = std::move(node);
  gd_ = std::move(out);
  return Status::OK();
}

}  // namespace

bool HasTf1ControlFlow(const tfpb::GraphDef& graph) {
  for (const auto& n : graph.node()) {
    if (IsFrameOp(n) || IsOp(n, "Switch") || IsOp(n, "Merge")) return true;
  }
  return false;
}

StatusOr<tfpb::GraphDef> LowerTf1ControlFlow(const tfpb::GraphDef& graph,
                                             const std::string& where) {
  Lowering l(graph, where);
  KILN_RETURN_IF_ERROR(l.Run());
  return std::move(l.graph());
}

}  // namespace kiln

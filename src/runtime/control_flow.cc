#include "runtime/control_flow.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "ops/base/dispatch.h"
#include "ops/base/kernel_context.h"
#include "ops/base/op_schema.h"
#include "ops/base/shape_util.h"
#include "ops/base/subgraph_kernel.h"
#include "ops/base/verify.h"
#include "ops/data_movement.h"
#include "runtime/executor.h"

namespace kiln {
namespace {

// The slice of `t` at `index` along `axis`, with that axis removed.
StatusOr<Tensor> SliceAxis(const Tensor& t, int axis, int64_t index) {
  KILN_ASSIGN_OR_RETURN(Tensor slice, data_movement::SliceAlongAxis(t, axis, index, 1));
  std::vector<int64_t> dims = t.dims();
  dims.erase(dims.begin() + axis);
  return slice.Reshaped(std::move(dims));
}

// Stacks equally shaped `items` along a new axis `axis` (0 <= axis <= item rank).
StatusOr<Tensor> StackAxis(const std::vector<Tensor>& items, int axis, const std::string& what) {
  std::vector<Tensor> expanded;
  expanded.reserve(items.size());
  for (const Tensor& t : items) {
    if (!t.is_tensor() || t.dtype() != items[0].dtype() || t.dims() != items[0].dims()) {
      return InvalidArgument(what + ": iterations produced " + items[0].TypeString() + " and " +
                             t.TypeString() + "; scan outputs must keep one type and shape");
    }
    std::vector<int64_t> dims = t.dims();
    dims.insert(dims.begin() + axis, 1);
    KILN_ASSIGN_OR_RETURN(Tensor e, t.Reshaped(std::move(dims)));
    expanded.push_back(std::move(e));
  }
  return data_movement::ConcatAlongAxis(expanded, axis, what);
}

StatusOr<bool> ScalarBool(const Tensor& t, const std::string& what) {
  if (!t.is_tensor() || t.num_elements() != 1) {
    return InvalidArgument(what + " must hold exactly one value, got " + t.TypeString());
  }
  return t.GetAsDouble(0) != 0;
}

// One subgraph attribute of a node, compiled once (see control_flow.h).
class Body {
 public:
  static StatusOr<std::unique_ptr<Body>> Compile(const KernelInitContext& init,
                                                 const std::string& attr,
                                                 const std::vector<std::string>& outer_reads) {
    const Node& node = init.node;
    const Attr* a = node.FindAttr(attr);
    if (a == nullptr || a->type != AttrType::kGraph || a->g == nullptr) {
      return InvalidArgument(node.Describe() + ": attribute '" + attr + "' must be a graph");
    }
    auto body = std::unique_ptr<Body>(new Body());
    body->graph_ = std::make_unique<Graph>(*a->g);
    Graph& g = *body->graph_;
    if (g.opset_imports.empty()) g.opset_imports = init.graph.opset_imports;
    if (g.name.empty()) g.name = node.name + "." + attr;
    // EngineOps inside the body find their native segments in the enclosing graph's function
    // library (the converter keeps every segment function at the root: convert/convert_bodies.h).
    for (const auto& [key, fn] : init.graph.functions) g.functions.emplace(key, fn);
    body->num_formal_ = static_cast<int>(g.inputs.size());
    std::set<std::string> defined(g.inputs.begin(), g.inputs.end());
    for (const auto& [name, t] : g.initializers) defined.insert(name);
    for (const Node& n : g.nodes) defined.insert(n.outputs.begin(), n.outputs.end());
    // What the enclosing graph defines (an enclosing body has its own outer reads as inputs).
    std::set<std::string> enclosing(init.graph.inputs.begin(), init.graph.inputs.end());
    for (const auto& [name, t] : init.graph.initializers) enclosing.insert(name);
    for (const Node& n : init.graph.nodes) enclosing.insert(n.outputs.begin(), n.outputs.end());
    std::vector<int> outer_index;
    for (size_t j = 0; j < outer_reads.size(); ++j) {
      const std::string& name = outer_reads[j];
      if (defined.count(name)) continue;
      if (!enclosing.count(name)) {
        return InvalidArgument(node.Describe() + ": subgraph '" + attr + "' reads '" + name +
                               "', which neither it nor an enclosing graph defines");
      }
      g.inputs.push_back(name);
      outer_index.push_back(static_cast<int>(j));
      if (g.FindValueInfo(name) != nullptr) continue;
      if (const ValueInfo* vi = init.graph.FindValueInfo(name)) {
        g.value_info[name] = *vi;
      } else if (auto it = init.graph.initializers.find(name); it != init.graph.initializers.end()) {
        g.value_info[name] = ValueInfo{it->second.dtype(), it->second.shape()};
      }
    }
    const std::string where = node.Describe() + ": subgraph '" + attr + "'";
    Status st = VerifyAndInferShapes(g, OpRegistry::Global());
    if (!st.ok()) return st.WithContext(where);
    auto ex = Executor::Compile(g, OpRegistry::Global());
    if (!ex.ok()) return ex.status().WithContext(where);
    body->exec_ = std::make_unique<Executor>(std::move(ex).value());
    for (int k = 0; k < body->num_formal_; ++k) {
      body->formal_slots_.push_back(body->exec_->SlotOf(g.inputs[k]));
    }
    for (size_t k = 0; k < outer_index.size(); ++k) {
      body->outer_slots_.emplace_back(body->exec_->SlotOf(g.inputs[body->num_formal_ + k]),
                                      outer_index[k]);
    }
    for (const auto& out : g.outputs) body->output_slots_.push_back(body->exec_->SlotOf(out));
    body->where_ = where;
    return body;
  }

  int num_formal() const { return num_formal_; }
  int num_outputs() const { return static_cast<int>(output_slots_.size()); }
  const Graph& graph() const { return *graph_; }

  // Runs the body on its formal inputs; the enclosing scope's values are ctx's inputs from
  // `outer_base` on, in OuterScopeReads order.
  StatusOr<std::vector<Tensor>> Run(std::vector<Tensor> formal, const KernelContext& ctx,
                                    int outer_base) const {
    if (static_cast<int>(formal.size()) != num_formal_) {
      return InvalidArgument(where_ + " takes " + std::to_string(num_formal_) + " inputs, " +
                             std::to_string(formal.size()) + " given");
    }
    std::vector<std::pair<int, Tensor>> feeds;
    feeds.reserve(formal.size() + outer_slots_.size());
    for (int k = 0; k < num_formal_; ++k) feeds.emplace_back(formal_slots_[k], std::move(formal[k]));
    for (const auto& [slot, j] : outer_slots_) {
      if (!ctx.has_input(outer_base + j)) {
        return Internal(where_ + ": an outer-scope value it reads has no value");
      }
      feeds.emplace_back(slot, ctx.input(outer_base + j));
    }
    auto result = exec_->Run(feeds, output_slots_, RunOptions{}, nullptr);
    if (!result.ok()) return result.status().WithContext(where_);
    return result;
  }

 private:
  Body() = default;
  std::unique_ptr<Graph> graph_;
  std::unique_ptr<Executor> exec_;
  int num_formal_ = 0;
  std::vector<int> formal_slots_;
  std::vector<std::pair<int, int>> outer_slots_;  // (body slot, index into outer reads)
  std::vector<int> output_slots_;
  std::string where_;
};

// A scan output of zero iterations: [0, ...] with the body's declared element shape.
StatusOr<Tensor> EmptyScanOutput(const Graph& body, int k, int axis) {
  ValueInfo vi = SubgraphOutputInfo(body, k);
  std::vector<int64_t> dims;
  if (vi.shape.fully_known()) dims = vi.shape.dims();
  if (axis > static_cast<int>(dims.size())) axis = static_cast<int>(dims.size());
  dims.insert(dims.begin() + axis, 0);
  return Tensor::Create(vi.dtype == DataType::kUndefined ? DataType::kFloat32 : vi.dtype, dims);
}

// ------------------------------------------------------------------------------------ If

class IfKernel : public OpKernel {
 public:
  static StatusOr<std::unique_ptr<OpKernel>> Create(const KernelInitContext& init) {
    auto k = std::unique_ptr<IfKernel>(new IfKernel());
    const auto reads = OuterScopeReads(init.node);
    KILN_ASSIGN_OR_RETURN(k->then_, Body::Compile(init, "then_branch", reads));
    KILN_ASSIGN_OR_RETURN(k->else_, Body::Compile(init, "else_branch", reads));
    const int n_out = static_cast<int>(init.node.outputs.size());
    for (const Body* b : {k->then_.get(), k->else_.get()}) {
      if (b->num_formal() != 0 || b->num_outputs() != n_out) {
        return InvalidArgument(init.node.Describe() + ": each branch must take no inputs and " +
                               "produce " + std::to_string(n_out) + " outputs (branch '" +
                               b->graph().name + "' takes " + std::to_string(b->num_formal()) +
                               " and produces " + std::to_string(b->num_outputs()) + ")");
      }
    }
    k->outer_base_ = static_cast<int>(init.node.inputs.size());
    return std::unique_ptr<OpKernel>(std::move(k));
  }

  Status Compute(KernelContext& ctx) const override {
    if (!ctx.has_input(0)) return ctx.Error("cond has no value");
    auto cond = ScalarBool(ctx.input(0), "cond");
    if (!cond.ok()) return ctx.Error(cond.status().message());
    const Body& branch = *cond ? *then_ : *else_;
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, branch.Run({}, ctx, outer_base_));
    for (size_t k = 0; k < outs.size(); ++k) ctx.SetOutput(static_cast<int>(k), std::move(outs[k]));
    return Status::OK();
  }

 private:
  std::unique_ptr<Body> then_, else_;
  int outer_base_ = 0;
};

// ---------------------------------------------------------------------------------- Loop

class LoopKernel : public OpKernel {
 public:
  static StatusOr<std::unique_ptr<OpKernel>> Create(const KernelInitContext& init) {
    auto k = std::unique_ptr<LoopKernel>(new LoopKernel());
    const Node& node = init.node;
    KILN_ASSIGN_OR_RETURN(k->body_, Body::Compile(init, "body", OuterScopeReads(node)));
    if (node.inputs.size() < 2) {
      return InvalidArgument(node.Describe() + ": Loop takes M and cond (either may be \"\") "
                             "before its loop-carried inputs");
    }
    k->num_carried_ = static_cast<int>(node.inputs.size()) - 2;
    k->num_scan_ = static_cast<int>(node.outputs.size()) - k->num_carried_;
    if (k->num_scan_ < 0 || k->body_->num_formal() != 2 + k->num_carried_ ||
        k->body_->num_outputs() != 1 + k->num_carried_ + k->num_scan_) {
      return InvalidArgument(node.Describe() + ": the body takes " +
                             std::to_string(k->body_->num_formal()) + " inputs and produces " +
                             std::to_string(k->body_->num_outputs()) + " outputs; with " +
                             std::to_string(k->num_carried_) + " loop-carried values and " +
                             std::to_string(node.outputs.size()) +
                             " node outputs it must take 2+N and produce 1+N+K");
    }
    k->outer_base_ = static_cast<int>(node.inputs.size());
    return std::unique_ptr<OpKernel>(std::move(k));
  }

  Status Compute(KernelContext& ctx) const override {
    const bool has_trip = ctx.has_input(0);  // none: until cond is false
    int64_t max_trip = 0;
    if (has_trip) {
      const Tensor& m = ctx.input(0);
      if (!m.is_tensor() || m.num_elements() != 1 || !IsInteger(m.dtype())) {
        return ctx.Error("M must be one integer, got " + m.TypeString());
      }
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(m));
      max_trip = v[0];
    }
    const bool has_cond = ctx.has_input(1);
    bool cond = true;
    if (has_cond) {
      auto c = ScalarBool(ctx.input(1), "cond");
      if (!c.ok()) return ctx.Error(c.status().message());
      cond = *c;
    }
    std::vector<Tensor> carried(num_carried_);
    for (int k = 0; k < num_carried_; ++k) {
      if (!ctx.has_input(2 + k)) {
        return ctx.Error("loop-carried input " + std::to_string(k) + " has no value");
      }
      carried[k] = ctx.input(2 + k);
    }
    std::vector<std::vector<Tensor>> scans(num_scan_);
    const int64_t cap = MaxLoopIterations();
    int64_t i = 0;
    for (; (!has_trip || i < max_trip) && cond; ++i) {
      if (i >= cap) {
        return ctx.Error("stopped after " + std::to_string(cap) +
                         " iterations (the cap KILN_MAX_LOOP_ITERATIONS)");
      }
      std::vector<Tensor> formal;
      formal.reserve(2 + num_carried_);
      formal.push_back(Tensor::Scalar<int64_t>(i));
      formal.push_back(Tensor::Scalar<bool>(cond));
      for (auto& c : carried) formal.push_back(std::move(c));
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, body_->Run(std::move(formal), ctx, outer_base_));
      if (has_cond) {
        auto c = ScalarBool(outs[0], "the body's cond output");
        if (!c.ok()) return ctx.Error(c.status().message());
        cond = *c;
      }
      for (int k = 0; k < num_carried_; ++k) carried[k] = std::move(outs[1 + k]);
      for (int k = 0; k < num_scan_; ++k) scans[k].push_back(std::move(outs[1 + num_carried_ + k]));
    }
    for (int k = 0; k < num_carried_; ++k) ctx.SetOutput(k, std::move(carried[k]));
    for (int k = 0; k < num_scan_; ++k) {
      StatusOr<Tensor> out = scans[k].empty()
                                 ? EmptyScanOutput(body_->graph(), 1 + num_carried_ + k, 0)
                                 : StackAxis(scans[k], 0, ctx.node().Describe());
      if (!out.ok()) return out.status();
      ctx.SetOutput(num_carried_ + k, std::move(out).value());
    }
    return Status::OK();
  }

 private:
  std::unique_ptr<Body> body_;
  int num_carried_ = 0, num_scan_ = 0, outer_base_ = 0;
};

// ---------------------------------------------------------------------------------- Scan

class ScanKernel : public OpKernel {
 public:
  static StatusOr<std::unique_ptr<OpKernel>> Create(const KernelInitContext& init) {
    auto k = std::unique_ptr<ScanKernel>(new ScanKernel());
    const Node& node = init.node;
    KILN_ASSIGN_OR_RETURN(k->body_, Body::Compile(init, "body", OuterScopeReads(node)));
    k->opset8_ = init.opset < 9;
    const Attr* m = node.FindAttr("num_scan_inputs");
    k->num_scan_in_ = m ? static_cast<int>(m->i) : 0;
    const int first = k->opset8_ ? 1 : 0;  // opset 8: sequence_lens comes first
    k->num_states_ = static_cast<int>(node.inputs.size()) - first - k->num_scan_in_;
    k->num_scan_out_ = static_cast<int>(node.outputs.size()) - k->num_states_;
    if (k->num_scan_in_ < 1 || k->num_states_ < 0 || k->num_scan_out_ < 0 ||
        k->body_->num_formal() != k->num_states_ + k->num_scan_in_ ||
        k->body_->num_outputs() != k->num_states_ + k->num_scan_out_) {
      return InvalidArgument(node.Describe() + ": num_scan_inputs, the node's inputs/outputs "
                             "and the body's inputs/outputs do not agree");
    }
    auto ints = [&node](const char* name, int n) {
      std::vector<int64_t> v(n, 0);
      if (const Attr* a = node.FindAttr(name)) v = a->ints;
      return v;
    };
    k->in_axes_ = ints("scan_input_axes", k->num_scan_in_);
    k->in_dirs_ = ints(k->opset8_ ? "directions" : "scan_input_directions", k->num_scan_in_);
    k->out_axes_ = ints("scan_output_axes", k->num_scan_out_);
    k->out_dirs_ = ints("scan_output_directions", k->num_scan_out_);
    if (static_cast<int>(k->in_axes_.size()) != k->num_scan_in_ ||
        static_cast<int>(k->in_dirs_.size()) != k->num_scan_in_ ||
        static_cast<int>(k->out_axes_.size()) != k->num_scan_out_ ||
        static_cast<int>(k->out_dirs_.size()) != k->num_scan_out_) {
      return InvalidArgument(node.Describe() + ": scan axes/directions lists must have one "
                             "entry per scan input/output");
    }
    k->outer_base_ = static_cast<int>(node.inputs.size());
    return std::unique_ptr<OpKernel>(std::move(k));
  }

  Status Compute(KernelContext& ctx) const override {
    const int first = opset8_ ? 1 : 0;
    std::vector<Tensor> states(num_states_), scan_in(num_scan_in_);
    for (int k = 0; k < num_states_ + num_scan_in_; ++k) {
      if (!ctx.has_input(first + k) || !ctx.input(first + k).is_tensor()) {
        return ctx.Error("input " + std::to_string(first + k) + " has no tensor value");
      }
      (k < num_states_ ? states[k] : scan_in[k - num_states_]) = ctx.input(first + k);
    }
    std::vector<Tensor> outs;
    if (!opset8_) {
      KILN_RETURN_IF_ERROR(Core(ctx, states, scan_in, in_axes_, out_axes_, &outs));
    } else {
      // Opset 8: every input has a batch axis 0; scan along axis 1 per batch entry.
      if (ctx.has_input(0)) {
        return ctx.UnimplementedError("sequence_lens (opset 8 Scan) is not supported");
      }
      int64_t batch = -1;
      for (const Tensor* t : {states.empty() ? nullptr : &states[0], &scan_in[0]}) {
        if (t != nullptr && t->rank() > 0) batch = t->dim(0);
      }
      std::vector<std::vector<Tensor>> per_batch;
      for (int64_t b = 0; b < batch; ++b) {
        std::vector<Tensor> s(num_states_), x(num_scan_in_), o;
        for (int k = 0; k < num_states_; ++k) {
          if (states[k].rank() < 1 || states[k].dim(0) != batch) return ctx.Error("batch mismatch");
          KILN_ASSIGN_OR_RETURN(s[k], SliceAxis(states[k], 0, b));
        }
        for (int k = 0; k < num_scan_in_; ++k) {
          if (scan_in[k].rank() < 2 || scan_in[k].dim(0) != batch) return ctx.Error("batch mismatch");
          KILN_ASSIGN_OR_RETURN(x[k], SliceAxis(scan_in[k], 0, b));
        }
        std::vector<int64_t> zeros_in(num_scan_in_, 0), zeros_out(num_scan_out_, 0);
        KILN_RETURN_IF_ERROR(Core(ctx, s, x, zeros_in, zeros_out, &o));
        per_batch.push_back(std::move(o));
      }
      if (batch <= 0) return ctx.Error("opset 8 Scan needs a batch dimension of at least 1");
      for (int k = 0; k < num_states_ + num_scan_out_; ++k) {
        std::vector<Tensor> items;
        for (auto& pb : per_batch) items.push_back(std::move(pb[k]));
        KILN_ASSIGN_OR_RETURN(Tensor t, StackAxis(items, 0, ctx.node().Describe()));
        outs.push_back(std::move(t));
      }
    }
    for (size_t k = 0; k < outs.size(); ++k) ctx.SetOutput(static_cast<int>(k), std::move(outs[k]));
    return Status::OK();
  }

 private:
  // Opset-9 semantics on one (unbatched) set of states and scan inputs.
  Status Core(const KernelContext& ctx, std::vector<Tensor> states,
              const std::vector<Tensor>& scan_in, const std::vector<int64_t>& in_axes,
              const std::vector<int64_t>& out_axes, std::vector<Tensor>* result) const {
    std::vector<int> axes(num_scan_in_);
    int64_t len = -1;
    for (int k = 0; k < num_scan_in_; ++k) {
      KILN_ASSIGN_OR_RETURN(axes[k], NormalizeAxis(in_axes[k], scan_in[k].rank(), ctx.node()));
      const int64_t l = scan_in[k].dim(axes[k]);
      if (len >= 0 && l != len) {
        return ctx.Error("scan inputs have different lengths (" + std::to_string(len) + " and " +
                         std::to_string(l) + ")");
      }
      len = l;
    }
    std::vector<std::vector<Tensor>> scans(num_scan_out_, std::vector<Tensor>(len));
    for (int64_t t = 0; t < len; ++t) {
      std::vector<Tensor> formal = std::move(states);
      formal.resize(num_states_ + num_scan_in_);
      for (int k = 0; k < num_scan_in_; ++k) {
        const int64_t at = in_dirs_[k] ? len - 1 - t : t;
        KILN_ASSIGN_OR_RETURN(formal[num_states_ + k], SliceAxis(scan_in[k], axes[k], at));
      }
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, body_->Run(std::move(formal), ctx, outer_base_));
      states.assign(outs.begin(), outs.begin() + num_states_);
      for (int k = 0; k < num_scan_out_; ++k) {
        scans[k][out_dirs_[k] ? len - 1 - t : t] = std::move(outs[num_states_ + k]);
      }
    }
    result->clear();
    for (auto& s : states) result->push_back(std::move(s));
    for (int k = 0; k < num_scan_out_; ++k) {
      const ValueInfo vi = SubgraphOutputInfo(body_->graph(), num_states_ + k);
      const int item_rank = len > 0 ? scans[k][0].rank() : (vi.shape.rank_known() ? vi.shape.rank() : 0);
      KILN_ASSIGN_OR_RETURN(int axis, NormalizeAxis(out_axes[k], item_rank + 1, ctx.node()));
      StatusOr<Tensor> out = len > 0 ? StackAxis(scans[k], axis, ctx.node().Describe())
                                     : EmptyScanOutput(body_->graph(), num_states_ + k, axis);
      if (!out.ok()) return out.status();
      result->push_back(std::move(out).value());
    }
    return Status::OK();
  }

  std::unique_ptr<Body> body_;
  bool opset8_ = false;
  int num_scan_in_ = 0, num_states_ = 0, num_scan_out_ = 0, outer_base_ = 0;
  std::vector<int64_t> in_axes_, in_dirs_, out_axes_, out_dirs_;
};

// --------------------------------------------------------------------------- SequenceMap

class SequenceMapKernel : public OpKernel {
 public:
  static StatusOr<std::unique_ptr<OpKernel>> Create(const KernelInitContext& init) {
    auto k = std::unique_ptr<SequenceMapKernel>(new SequenceMapKernel());
    const Node& node = init.node;
    KILN_ASSIGN_OR_RETURN(k->body_, Body::Compile(init, "body", OuterScopeReads(node)));
    if (k->body_->num_formal() != static_cast<int>(node.inputs.size()) ||
        k->body_->num_outputs() != static_cast<int>(node.outputs.size())) {
      return InvalidArgument(node.Describe() + ": the body must take one input per node input "
                             "and produce one output per node output");
    }
    k->outer_base_ = static_cast<int>(node.inputs.size());
    return std::unique_ptr<OpKernel>(std::move(k));
  }

  Status Compute(KernelContext& ctx) const override {
    const int n_in = static_cast<int>(ctx.node().inputs.size());
    if (!ctx.has_input(0) || !ctx.input(0).is_sequence()) {
      return ctx.Error("input 0 must be a sequence");
    }
    const size_t len = ctx.input(0).sequence().size();
    for (int j = 1; j < n_in; ++j) {
      if (!ctx.has_input(j)) return ctx.Error("input " + std::to_string(j) + " has no value");
      if (ctx.input(j).is_sequence() && ctx.input(j).sequence().size() != len) {
        return ctx.Error("input sequences have different lengths");
      }
    }
    const int n_out = ctx.num_outputs();
    std::vector<std::vector<Tensor>> items(n_out);
    for (size_t i = 0; i < len; ++i) {
      std::vector<Tensor> formal;
      for (int j = 0; j < n_in; ++j) {
        const Tensor& in = ctx.input(j);
        formal.push_back(in.is_sequence() ? in.sequence()[i] : in);
      }
      KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, body_->Run(std::move(formal), ctx, outer_base_));
      for (int k = 0; k < n_out; ++k) items[k].push_back(std::move(outs[k]));
    }
    for (int k = 0; k < n_out; ++k) {
      DataType dt = items[k].empty() ? SubgraphOutputInfo(body_->graph(), k).dtype : items[k][0].dtype();
      if (dt == DataType::kUndefined) dt = DataType::kFloat32;
      ctx.SetOutput(k, Tensor::Sequence(dt, std::move(items[k])));
    }
    return Status::OK();
  }

 private:
  std::unique_ptr<Body> body_;
  int outer_base_ = 0;
};

}  // namespace

int64_t MaxLoopIterations() {
  constexpr int64_t kDefault = 10'000'000;
  const char* env = std::getenv("KILN_MAX_LOOP_ITERATIONS");
  if (env == nullptr || *env == '\0') return kDefault;
  char* end = nullptr;
  long long v = std::strtoll(env, &end, 10);
  return (end != env && *end == '\0' && v > 0) ? static_cast<int64_t>(v) : kDefault;
}

void RegisterControlFlowKernels() {
  static std::once_flag once;
  std::call_once(once, [] {
    SetSubgraphKernelFactory("If", IfKernel::Create);
    SetSubgraphKernelFactory("Loop", LoopKernel::Create);
    SetSubgraphKernelFactory("Scan", ScanKernel::Create);
    SetSubgraphKernelFactory("SequenceMap", SequenceMapKernel::Create);
  });
}

}  // namespace kiln
